"""The world view (runtime/world_view.py) on a real EGL context: the first image in priority order
shows where several see one surface, a later one fills what the first leaves open and shows a
surface in front of the first one's that the first camera could not see (but not one it saw past),
and the pixels no image covers are filled from their surroundings rather than left black."""
import moderngl
import numpy as np
import pytest

from runtime.depth_warp import LayerStack
from runtime.world_view import WorldView

W, H = 64, 48
K = np.array([[50.0, 0, W / 2], [0, 50.0, H / 2], [0, 0, 1]])


def moved(x: float) -> np.ndarray:
    c2w = np.eye(4)
    c2w[0, 3] = x
    return c2w


@pytest.fixture
def view():
    ctx = moderngl.create_standalone_context(backend="egl", require=430)
    with ctx:
        yield ctx, WorldView(ctx, (W, H)), LayerStack(ctx, (W, H), 2)
    ctx.release()


def flat(rgb, depth=5.0):
    return np.full((H, W, 3), rgb, np.uint8), np.full((H, W), depth, np.float32)


def test_the_first_image_in_priority_order_shows_and_a_later_one_fills_its_gaps(view):
    ctx, world, stack = view
    red, depth = flat((200, 0, 0))
    depth[:, 40:] = 0.0                                  # the right third has no surface in the first image
    stack.upload(0, red, depth, K, np.eye(4))
    stack.upload(1, *flat((0, 0, 200)), K, np.eye(4))
    world.render(stack, [(0, 1), (1, 1)], K, np.eye(4))
    out = world.read()
    assert (out[:, :38] == (200, 0, 0)).all()
    assert (out[:, 42:] == (0, 0, 200)).all()
    world.render(stack, [(1, 1), (0, 1)], K, np.eye(4))  # the other order: blue everywhere
    assert (world.read() == (0, 0, 200)).all()


def test_a_later_image_shows_a_nearer_surface_only_where_the_earlier_camera_could_not_see_it(view):
    """Red: a wall 5 ahead of the first camera. Blue, the later image: a wall 4 ahead of its camera."""
    ctx, world, stack = view
    stack.upload(0, *flat((200, 0, 0), 5.0), K, np.eye(4))
    stack.upload(1, *flat((0, 0, 200), 3.0), K, np.eye(4))     # the first camera saw past it: free space
    world.render(stack, [(0, 1), (1, 1)], K, np.eye(4))
    assert (world.read() == (200, 0, 0)).all()
    behind = np.diag([-1.0, 1.0, -1.0, 1.0])                     # turned around, 10 ahead of the first camera:
    behind[2, 3] = 10.0                                          # the red wall's back is 5 ahead of it
    stack.upload(1, *flat((0, 0, 200), 4.0), K, behind)          # 6 from the first camera: behind its wall
    world.render(stack, [(0, 1), (1, 1)], K, behind)
    assert (world.read()[4:-4, 4:-4] == (0, 0, 200)).all()
    stack.upload(1, *flat((0, 0, 200), 4.8), K, behind)          # within SAME_SURFACE of the wall: the first shows
    world.render(stack, [(0, 1), (1, 1)], K, behind)
    assert (world.read()[4:-4, 4:-4] == (200, 0, 0)).all()


def test_pixels_no_image_covers_are_filled_from_their_surroundings(view):
    ctx, world, stack = view
    colour, depth = flat((0, 0, 0))
    colour[:, : W // 2], colour[:, W // 2:] = (250, 0, 0), (0, 250, 0)
    stack.upload(0, colour, depth, K, np.eye(4))
    world.render(stack, [(0, 1)], K, moved(0.8))         # the view moves right: its right border is unseen
    out = world.read().astype(int)
    gap = out[:, -6:]                                    # 50 * 0.8 / 5 = 8 px never seen
    assert gap.sum(-1).min() > 150                       # filled, not black
    assert (gap[..., 1] > gap[..., 0]).all()             # with the colour of the green side beside it


def test_a_large_hole_takes_the_colour_around_it_not_black(view):
    """Turned 40 degrees away, most of the view was never seen: it is filled with the seen colours."""
    ctx, world, stack = view
    stack.upload(0, *flat((200, 100, 50)), K, np.eye(4))
    a = np.radians(40.0)
    turned = np.eye(4)
    turned[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    world.render(stack, [(0, 1)], K, turned)
    out = world.read().astype(int)
    assert np.abs(out - (200, 100, 50)).max() <= 2


def test_covered_is_the_share_of_the_view_the_images_saw():
    """The source view is fully covered; a view moved left by 20 of 104 px leaves those 20 columns
    unseen. 104x60 halves to odd sizes (13x15 and below), where a mip level's mean is not the frame's."""
    size, K2 = (104, 60), np.array([[50.0, 0, 52], [0, 50.0, 30], [0, 0, 1]])
    ctx = moderngl.create_standalone_context(backend="egl", require=430)
    with ctx:
        world, stack = WorldView(ctx, size), LayerStack(ctx, size, 1)
        stack.upload(0, np.full((60, 104, 3), 90, np.uint8), np.full((60, 104), 5.0, np.float32), K2, np.eye(4))
        world.render(stack, [(0, 1)], K2, np.eye(4))
        assert world.covered() > 0.98
        world.render(stack, [(0, 1)], K2, moved(-2.0))       # 50 * 2.0 / 5 = 20 px never seen, on the left
        assert world.covered() == pytest.approx(1 - 20 / 104, abs=0.02)
    ctx.release()
