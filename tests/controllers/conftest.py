"""A pygame event queue on the dummy video driver, for the controller tests."""
import pytest


@pytest.fixture
def pg():
    pygame = pytest.importorskip("pygame")
    pygame.display.init()
    pygame.event.clear()
    yield pygame
    pygame.display.quit()


@pytest.fixture
def pump():
    """pump(pg, *handlers): hand every queued pygame event to each handler's `handle`."""
    def deliver(pg, *handlers):
        for event in pg.event.get():
            for h in handlers:
                h.handle(event)
    return deliver
