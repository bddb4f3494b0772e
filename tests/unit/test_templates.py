import pytest

from functions.notify import templates
from shared.errors import Unprocessable


def test_templates_fill_their_placeholders():
    assert templates.render("welcome", {"name": "Ann"}) == ("Welcome to the shop, Ann",
                                                            "Hello Ann, thank you for signing up.\n")


def test_context_values_are_never_interpreted():
    subject, _ = templates.render("welcome", {"name": "$name ${order_id} {0.__class__}"})

    assert subject == "Welcome to the shop, $name ${order_id} {0.__class__}"


@pytest.mark.parametrize("template_id, context", [("nope", {}), ("welcome", {})])
def test_unknown_templates_and_missing_context_are_client_errors(template_id, context):
    with pytest.raises(Unprocessable):
        templates.render(template_id, context)
