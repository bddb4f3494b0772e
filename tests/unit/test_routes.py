from shared.routes import ROUTES, route


def test_route_names_and_targets_are_unique():
    assert len({r.name for r in ROUTES}) == len(ROUTES)
    assert len({(r.method, r.path) for r in ROUTES if r.path}) == len([r for r in ROUTES if r.path])


def test_every_route_points_at_an_existing_entry_file_defining_its_target():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for entry in ROUTES:
        source = (root / entry.source).read_text()
        assert f"def {entry.target}(" in source, entry.name
        assert f'"{entry.name}"' in source or entry.signature == "cloudevent", entry.name


def test_path_templates_capture_parameters_and_nothing_else():
    get_product = route("catalog-get-product")

    assert get_product.match("/products/abc") == {"product_id": "abc"}
    assert get_product.match("/products/abc/extra") is None
    assert get_product.match("/products/") is None
    assert route("catalog-list-products").match("/products") == {}


def test_scaling_targets_stay_below_the_hard_concurrency_limit():
    for entry in ROUTES:
        assert 0 < entry.scaling.target <= entry.scaling.container_concurrency, entry.name
        assert 0 <= entry.scaling.min_scale <= entry.scaling.max_scale, entry.name
