"""What the simulation reads from the Knative manifests, and the inputs it takes as measured or assumed."""

import json

import pytest
import yaml

from bench.sim import config, inputs


def manifest(annotations=None, container_concurrency=100, resources=None):
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "probe"},
            "spec": {"template": {"metadata": {"annotations": annotations or {}},
                                  "spec": {"containerConcurrency": container_concurrency, "timeoutSeconds": 30,
                                           "containers": [{"resources": resources or {}}]}}}}


def test_go_durations_and_kubernetes_quantities():
    assert config.go_duration("60s") == 60
    assert config.go_duration("2m") == 120
    assert config.go_duration("1m30s") == 90
    assert config.go_duration("500ms") == 0.5
    assert config.go_duration("6") == 6
    assert config.quantity("100m") == pytest.approx(0.1)
    assert config.quantity("128Mi") == 128 * 2**20
    assert config.quantity("1") == 1
    with pytest.raises(ValueError):
        config.go_duration("soon")


def test_every_autoscaling_annotation_is_read_by_name():
    probe = config.from_manifest(manifest({
        "autoscaling.knative.dev/target": "20", "autoscaling.knative.dev/target-utilization-percentage": "80",
        "autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/max-scale": "7",
        "autoscaling.knative.dev/window": "120s", "autoscaling.knative.dev/panic-window-percentage": "20",
        "autoscaling.knative.dev/panic-threshold-percentage": "300", "autoscaling.knative.dev/scale-down-delay": "2m",
        "autoscaling.knative.dev/activation-scale": "3", "autoscaling.knative.dev/target-burst-capacity": "-1"},
        resources={"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}))

    assert (probe.total, probe.target) == (20, 16)
    assert (probe.min_scale, probe.max_scale) == (1, 7)
    assert (probe.stable_window, probe.panic_window, probe.panic_threshold) == (120, 24, 3.0)
    assert (probe.scale_down_delay, probe.activation_scale, probe.target_burst_capacity) == (120, 3, -1)
    assert (probe.cpu_request, probe.cpu_limit) == (0.25, 2)
    assert (probe.memory_request_gib, probe.memory_limit_gib) == (0.25, 1)
    spec = probe.decider_spec()
    assert (spec.target_value, spec.stable_window, spec.scale_down_delay) == (16, 120, 120)


def test_the_target_annotation_is_capped_by_container_concurrency_and_discounted_like_upstream():
    assert config.from_manifest(manifest({"autoscaling.knative.dev/target": "70"})).target == pytest.approx(49)
    assert config.from_manifest(manifest({"autoscaling.knative.dev/target": "500"})).target == pytest.approx(70)
    assert config.from_manifest(manifest(container_concurrency=0)).target == pytest.approx(70)
    assert config.from_manifest(manifest(container_concurrency=50)).target == pytest.approx(35)


def test_the_generated_manifests_all_parse(tmp_path):
    services = config.load_services()

    assert services
    for name, service in services.items():
        assert service.target > 0, name
        assert service.cpu_limit > 0, name
        assert service.max_scale == 0 or service.min_scale <= service.max_scale, name
    # a regenerated manifest is read as it is: nothing about the shop's own values is built in
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(manifest({"autoscaling.knative.dev/max-scale": "3"})))
    assert config.load_services(tmp_path)["probe"].max_scale == 3


def test_measured_results_replace_the_assumed_inputs_and_say_so(tmp_path):
    (tmp_path / "cost.json").write_text(json.dumps({"source": "load run", "endpoints": [
        {"function": "cart-get-cart", "p50_ms": "12.5", "cpu_ms_per_request": "1.200", "peak_rss_mib": "80.0"}]}))
    (tmp_path / "bench.json").write_text(json.dumps({"date": "2026-11-25", "cold_start": [
        {"function": "cart-get-cart", "median_ms": 900}]}))
    chosen, found = inputs.load(["cart-get-cart", "cart-add-item"], tmp_path)

    cart = chosen["cart-get-cart"]
    assert (cart.service_time, cart.cpu_per_request, cart.process_start) == pytest.approx((0.0125, 0.0012, 0.9))
    assert all(source.startswith("measured") for source in cart.sources.values())
    assert all(source.startswith("assumed") for source in chosen["cart-add-item"].sources.values())
    assert set(found) == {"cost.json", "bench.json"}
    assert inputs.load(["cart-get-cart"], tmp_path / "nothing")[1] == {}
