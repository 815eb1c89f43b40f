"""config.yaml and the controllers/runtime dataclasses agree; bad values are one-line errors."""
import pytest

from controllers.config import ControllersConfig, GamepadConfig, KeyBindings, PadButtons
from runtime.config import ClockConfig, ConfigError, PacingConfig, RigConfig, RuntimeConfig, load_config


def test_yaml_defaults_equal_dataclass_defaults():
    cfg = load_config()
    assert cfg.controllers == ControllersConfig()
    assert cfg.runtime.rig == RigConfig() and cfg.runtime.clock == ClockConfig()
    assert cfg.runtime.pacing == PacingConfig()
    assert cfg.runtime == RuntimeConfig()


def test_overrides_and_errors():
    cfg = load_config(overrides=["controllers.keys.pause=[f9, space]", "runtime.clock.ends=loop",
                                 "controllers.gamepad.stick_deadzone=0.2"])
    assert cfg.controllers.keys.pause == ("f9", "space") and cfg.runtime.clock.ends == "loop"
    assert cfg.controllers.gamepad.stick_deadzone == 0.2
    for bad in ["runtime.clock.ends=bounce", "controllers.gamepad.stick_deadzone=1.5",
                "controllers.gamepad.buttons.pause=[z]", "runtime.rig.mode=swim",
                "controllers.keys.jump=[j]", "runtime.clock.speed_steps=[2.0, 1.0]"]:
        with pytest.raises(ConfigError):
            load_config(overrides=[bad])


def test_dataclass_validation():
    with pytest.raises(ValueError, match="bad names"):
        KeyBindings(pause=("",))
    with pytest.raises(ValueError, match="expected some of"):
        PadButtons(pause=("triangle",))
    with pytest.raises(ValueError, match="backend"):
        GamepadConfig(backend="xinput")
