"""Config of the input devices (section `controllers` of config.yaml)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class ControllersConfig:
    mouse_look: bool = True            # hold the left mouse button and drag to look around
    mouse_sensitivity_deg: float = 0.15  # degrees of look per pixel of mouse motion
