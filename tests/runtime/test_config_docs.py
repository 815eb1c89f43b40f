"""Each config key is documented in one place: its dataclass field's comment, which config.yaml
repeats word for word (python3 -m runtime.config_docs prints the differences)."""
from runtime.config_docs import differences


def test_config_yaml_comments_are_the_dataclass_field_comments():
    diffs = differences()
    assert not diffs, "config.yaml and the config dataclasses disagree:\n" + "\n".join(diffs)
