"""Volume rendering: the geometry phantom seen from every side lands where the camera
conventions say; the presets show what they name; any acquisition (oblique, gantry
tilted) renders the same picture; cancel, coarse frames, shaded MIP; transfer presets."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.synthetic import AXIAL, MARKER, OBLIQUE, SPHERE, write_series
from tui.archive.importer import import_paths
from tui.archive.index import Archive
from tui.archive.query import series_instances
from tui.errors import UserError
from tui.render import vr
from tui.render.lut import Window
from tui.render.transfer import Transfer, find_transfer, load_transfers
from tui.render.volume import Volume, VolumeError, assemble, load, slices_of
from tui.render.vr import MODES, Camera, Picture, camera_axes, render_volume, rotation

# Only the marker (1500 HU) is opaque: its place in the picture is unambiguous.
MARKER_ONLY = Transfer("marker", ((1000, 0.0, 1, 1, 1), (1200, 1.0, 1, 1, 1)))
TILT = np.radians(15)
TILTED = (1.0, 0.0, 0.0, 0.0, float(np.cos(TILT)), float(np.sin(TILT)))


def _load(root: Path, name: str, **kwargs) -> Volume:
    with Archive(root / f"{name}-archive") as archive:
        uid = write_series(root / name, **kwargs)
        import_paths(archive, [root / name])
        return load(assemble(slices_of(series_instances(archive, uid)))[0])


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Volume:
    return _load(tmp_path_factory.mktemp("vr"), "axial", orientation=AXIAL)


@pytest.fixture(scope="module")
def ct() -> dict[str, Transfer]:
    return load_transfers()["CT"]


def _where(picture: Picture, point: np.ndarray) -> np.ndarray:
    """(row, column) where a patient point projects (the phantom's box is centred on 0)."""
    rows, columns = picture.image.shape[:2]
    centre = np.array([(rows - 1) / 2, (columns - 1) / 2])
    return centre + np.array([point @ picture.down, point @ picture.right]) / picture.pixel_mm


def _patch(picture: Picture, pixel: tuple[int, ...]) -> np.ndarray:
    """The mean colour of the 5 x 5 pixels round ``pixel`` (row, column)."""
    row, column = pixel[0], pixel[1]
    return picture.image[row - 2 : row + 3, column - 2 : column + 3].reshape(-1, 3).mean(axis=0)


def _centroid(picture: Picture) -> np.ndarray:
    rows, columns = np.nonzero(picture.image.max(axis=2) > 0)
    assert rows.size, "nothing visible"
    return np.array([rows.mean(), columns.mean()])


# (azimuth, elevation), forward, right, down: the contract's words as vectors.
DIRECTIONS = [
    ((0, 0), (0, 1, 0), (1, 0, 0), (0, 0, -1)),  # from the front
    ((90, 0), (-1, 0, 0), (0, 1, 0), (0, 0, -1)),  # from the patient's left
    ((180, 0), (0, -1, 0), (-1, 0, 0), (0, 0, -1)),  # from behind
    ((270, 0), (1, 0, 0), (0, -1, 0), (0, 0, -1)),  # from the right
    ((0, 90), (0, 0, -1), (1, 0, 0), (0, -1, 0)),  # from above: up is posterior
    ((0, -90), (0, 0, 1), (1, 0, 0), (0, 1, 0)),  # from the feet, as the axial view
]


@pytest.mark.parametrize(("angles", "forward", "right", "down"), DIRECTIONS)
def test_camera_axes_follow_the_conventions(angles, forward, right, down) -> None:
    axes = camera_axes(Camera(*angles))
    for got, want in zip(axes, (forward, right, down), strict=True):
        assert np.allclose(got, want, atol=1e-9), (angles, axes)


# The marker (x -35: patient right, y +25: posterior, z 0) seen from each side: which
# half of the image it is in, as (row side, column side); 0 = the middle.
MARKER_SIDES = {
    (0, 0): (0, -1),  # from the front: patient right is image left
    (90, 0): (0, 1),  # from the left: posterior is image right
    (180, 0): (0, 1),  # from behind: patient right is image right
    (270, 0): (0, -1),  # from the right: posterior is image left
    (0, 90): (-1, -1),  # from above: posterior is up, right is left
    (0, -90): (1, -1),  # from the feet: posterior is down, right is left
}


@pytest.mark.parametrize("angles", list(MARKER_SIDES))
def test_the_marker_lands_on_its_side_from_six_directions(phantom: Volume, angles) -> None:
    picture = render_volume(phantom, MARKER_ONLY, Camera(*angles), size=(128, 128))
    assert picture.image.shape == (128, 128, 3) and picture.image.dtype == np.uint8
    found = _centroid(picture)
    offset = found - 63.5
    for side, value in zip(MARKER_SIDES[angles], offset, strict=True):
        if side:
            assert np.sign(value) == side and abs(value) > 5, (angles, found)
        else:
            assert abs(value) < 2, (angles, found)
    # And exactly where the camera's axes put it, within a pixel or two.
    assert np.allclose(found, _where(picture, MARKER), atol=2), (angles, found)


def test_the_sphere_shows_with_bone_and_not_with_skin(
    phantom: Volume, ct: dict[str, Transfer]
) -> None:
    camera = Camera(0, 0)
    bone = render_volume(phantom, ct["bone"], camera, size=(128, 128))
    skin = render_volume(phantom, ct["skin"], camera, size=(128, 128))
    sphere = tuple(np.rint(_where(bone, SPHERE)).astype(int))
    tissue = tuple(np.rint(_where(bone, np.array([-10.0, -60.0, -30.0]))).astype(int))
    # Bone: the 300 HU sphere is bright, the 40 HU box around it clear (black).
    assert bone.image[sphere].min() > 80 and bone.image[tissue].max() == 0
    # Skin: the box's surface is opaque and the sphere inside it does not show.
    # (5 x 5 means: each ray's jittered start makes a fine grain on the surface)
    assert skin.image[tissue].min() > 80
    assert np.abs(_patch(skin, sphere) - _patch(skin, tissue)).max() <= 3
    # The headlight shades the sphere: its centre faces the light, its rim does not.
    rim = (sphere[0], sphere[1] + int(10 / bone.pixel_mm))
    assert bone.image[sphere].sum() > bone.image[rim].sum() + 30


def test_oblique_and_tilted_acquisitions_render_the_same_picture(
    phantom: Volume, ct: dict[str, Transfer], tmp_path: Path
) -> None:
    oblique = _load(tmp_path, "oblique", orientation=OBLIQUE)
    step = 2.0
    tilted = _load(
        tmp_path, "tilted", orientation=TILTED, step=step,
        shear=(0.0, float(np.sin(TILT)) * step, 0.0),
    )  # fmt: skip
    assert abs(np.linalg.det(tilted.affine[:3, :3])) > 1  # a sheared, not a square, affine
    for camera in (Camera(0, 0), Camera(30, 15), Camera(200, -40)):
        axial = render_volume(phantom, ct["bone"], camera, size=(128, 128))
        for other in (oblique, tilted):
            # The same scale: zoom 1 spans each volume's bounding box diagonal.
            first = render_volume(other, ct["bone"], camera, size=(128, 128))
            zoom = first.pixel_mm / axial.pixel_mm
            zoomed = Camera(camera.azimuth, camera.elevation, zoom)
            picture = render_volume(other, ct["bone"], zoomed, size=(128, 128))
            assert picture.pixel_mm == pytest.approx(axial.pixel_mm)
            # The camera looks at the bounding box's centre: the tilted box is off centre,
            # so the phantom moves the other way in the picture.
            moved = (_centre(phantom) - _centre(other)) / axial.pixel_mm
            shift = np.rint([moved @ axial.down, moved @ axial.right]).astype(int)
            expected = np.roll(axial.image, tuple(shift), axis=(0, 1))
            same = _correlation(expected, picture.image)
            assert same > 0.95, (camera, same)


def _centre(volume: Volume) -> np.ndarray:
    k, j, i = volume.data.shape
    corners = [
        volume.affine @ [c, r, s, 1] for c in (0, i - 1) for r in (0, j - 1) for s in (0, k - 1)
    ]
    return (np.min(corners, axis=0) + np.max(corners, axis=0))[:3] / 2


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(float).ravel(), b.astype(float).ravel())[0, 1])


def test_cancel_stops_a_render(phantom: Volume, ct: dict[str, Transfer]) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(VolumeError, match="rendering cancelled"):
        render_volume(phantom, ct["bone"], Camera(), cancel=cancel)
    # Set while rendering a large frame: it stops between bands of rows, long before the end.
    cancel = threading.Event()
    size = (1536, 1536)
    start = time.perf_counter()
    render_volume(phantom, ct["skin"], Camera(10, 10), size=size)
    whole = time.perf_counter() - start
    timer = threading.Timer(whole / 10, cancel.set)
    timer.start()
    start = time.perf_counter()
    with pytest.raises(VolumeError, match="rendering cancelled"):
        render_volume(phantom, ct["skin"], Camera(10, 10), size=size, cancel=cancel)
    assert time.perf_counter() - start < whole * 0.75
    timer.join()


def test_renders_from_several_threads_at_once(phantom: Volume, ct: dict[str, Transfer]) -> None:
    """The app renders a coarse frame while a full one runs: each frame runs its own
    threads, and frames at once must not disturb each other."""
    alone = render_volume(phantom, ct["bone"], Camera(30, 15), (96, 96)).image
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work(volume: Volume) -> None:
        try:
            for _ in range(3):
                results.append(render_volume(volume, ct["bone"], Camera(30, 15), (96, 96)).image)
        except BaseException as error:  # reported below
            errors.append(error)

    # A new volume's first render measures its blocks (a parallel loop too) meanwhile.
    fresh = replace(phantom, data=phantom.data.copy())
    threads = [threading.Thread(target=work, args=(v,)) for v in (phantom, fresh, phantom)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 9
    assert all((image == alone).all() for image in results)


def test_the_same_request_gives_the_same_image_on_any_threads(
    phantom: Volume, ct: dict[str, Transfer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rays' jitter is a fixed pattern, and the threads only share out rows: the same
    image every time, on one thread or two; the frame's helper threads end with it (the
    CLI forks worker processes only while it has a single thread)."""
    threads = threading.active_count()
    first = render_volume(phantom, ct["skin"], Camera(30, 15), (96, 80)).image
    assert threading.active_count() == threads
    again = render_volume(phantom, ct["skin"], Camera(30, 15), (96, 80)).image
    monkeypatch.setattr(vr, "THREADS", 1)
    alone = render_volume(phantom, ct["skin"], Camera(30, 15), (96, 80)).image
    assert (first == again).all() and (first == alone).all()
    assert first.any()


def test_warm_up_compiles_every_data_type() -> None:
    vr.warm_up()
    from tui.render import raycast_kernel

    for loop in (raycast_kernel.composite, raycast_kernel.maximum):
        arrays = [str(signature[0]) for signature in loop.signatures]  # "array(int16, 3d, C)"
        for dtype in ("int16", "uint16", "float32", "uint8"):
            assert any(f"array({dtype}," in array for array in arrays), arrays


def test_a_coarse_frame_is_less_work_and_the_same_picture(
    phantom: Volume, ct: dict[str, Transfer]
) -> None:
    camera, size = Camera(30, 15), (256, 256)
    full = render_volume(phantom, ct["bone"], camera, size)
    coarse = render_volume(phantom, ct["bone"], camera, size, coarse=True)
    assert coarse.image.shape == full.image.shape and coarse.pixel_mm == full.pixel_mm
    # Half the rays each way (a quarter of the work, and half the samples per ray): every
    # 2 x 2 block of pixels is one ray. (Timing it is left to the benchmark: on a shared
    # machine the gap is not reliable in a test.)
    blocks = coarse.image.reshape(128, 2, 128, 2, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()
    assert _correlation(full.image, coarse.image) > 0.9


def test_shaded_mip_shows_the_marker_brightest(phantom: Volume, ct: dict[str, Transfer]) -> None:
    window = Window(500, 3000)
    for angles in ((0, 0), (90, 0), (0, -90)):
        picture = render_volume(
            phantom, ct["bone"], Camera(*angles), size=(128, 128), mode="smip", window=window
        )
        grey = picture.image[:, :, 0]
        assert (picture.image == grey[:, :, None]).all()  # grey
        brightest = np.array(np.unravel_index(np.argmax(grey), grey.shape))
        assert np.abs(brightest - _where(picture, MARKER)).max() <= 4, angles
        assert grey[tuple(np.rint(_where(picture, SPHERE)).astype(int))] < grey.max()
        assert picture.description.startswith("shaded MIP")
    auto = render_volume(phantom, ct["bone"], Camera(), size=(64, 64), mode="smip")
    assert auto.image.max() > 0 and auto.image[0, 0].max() == 0  # rays that miss are black


def _speckle(grey: np.ndarray, inside: np.ndarray) -> float:
    """The mean absolute difference of neighbouring pixels both ``inside``: salt and
    pepper makes it large, smooth shading small."""
    grey = grey.astype(float)
    across = np.abs(np.diff(grey, axis=1))[inside[:, 1:] & inside[:, :-1]]
    along = np.abs(np.diff(grey, axis=0))[inside[1:] & inside[:-1]]
    return float(np.concatenate([across, along]).mean())


def test_shaded_mip_of_noisy_data_is_smooth(phantom: Volume, ct: dict[str, Transfer]) -> None:
    """CT noise makes the gradient at a ray's maximum point anywhere: the lighting must
    come from the structure holding the maximum, not the noise."""
    noise = np.random.default_rng(15).normal(0, 30 / phantom.slope, phantom.data.shape)
    noisy = replace(phantom, data=(phantom.data + noise).astype(phantom.data.dtype))
    window = Window(400, 1000)
    for angles in ((0, 0), (30, 15)):
        picture = render_volume(
            noisy, ct["bone"], Camera(*angles), (128, 128), mode="smip", window=window
        )
        # The sphere (300 HU, radius 12 mm) without its rim (the shading's own edge).
        rows, columns = np.indices(picture.image.shape[:2])
        centre = _where(picture, SPHERE)
        inside = np.hypot(rows - centre[0], columns - centre[1]) < 8 / picture.pixel_mm
        grey = picture.image[:, :, 0]
        assert grey[inside].mean() > 40
        assert _speckle(grey, inside) < 10, angles  # 24 with the gradient at the maximum


def test_a_small_picture_averages_four_rays_a_pixel(
    phantom: Volume, ct: dict[str, Transfer]
) -> None:
    """A terminal pane's picture (here 96 x 64) is the 2 x 2 average of the picture twice
    its size: a single ray's grain would be a whole pixel there."""
    camera = Camera(30, 15)
    for mode in MODES:
        small = render_volume(phantom, ct["skin"], camera, (96, 64), mode=mode)
        large = render_volume(phantom, ct["skin"], camera, (192, 128), mode=mode)
        assert small.pixel_mm == pytest.approx(2 * large.pixel_mm)
        mean = large.image.reshape(64, 2, 96, 2, 3).astype(float).mean(axis=(1, 3))
        assert np.abs(small.image - mean).max() <= 0.5 and small.image.any()
    # A coarse frame stays one ray per 2 x 2 pixels (it is the quick one).
    coarse = render_volume(phantom, ct["skin"], camera, (96, 64), coarse=True)
    blocks = coarse.image.reshape(32, 2, 48, 2, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()


def test_loaded_only_after_the_compiled_renderer_ran() -> None:
    """The app tells the user the first frame waits for the renderer while loaded() is
    False: importing the loops is not running them."""
    code = (
        "from tui.render import vr, raycast_kernel\n"
        "before = vr.loaded()\n"
        "vr.warm_up()\n"
        "print(before, vr.loaded())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_descriptions_rotation_and_refusals(phantom: Volume, ct: dict[str, Transfer]) -> None:
    picture = render_volume(phantom, ct["bone"], Camera(30, 15, 2), size=(64, 48))
    assert picture.image.shape == (48, 64, 3)
    assert picture.description == "VR bone, azimuth 30°, elevation 15°, zoom 2"
    # Angles and zoom as a reader wants them, whatever turns and zooms led there.
    for camera, text in (
        (Camera(-30.00001, 15.00002, 1.5000001), "azimuth 330°, elevation 15°, zoom 1.5"),
        (Camera(359.99, -0.0001, 1.00004), "azimuth 0°, elevation 0°"),
        (Camera(725, -90, 2.25), "azimuth 5°, elevation -90°, zoom 2.25"),
    ):
        described = render_volume(phantom, ct["bone"], camera, size=(8, 8)).description
        assert described == f"VR bone, {text}", camera
    frames = rotation(phantom, ct["bone"], frames=4, size=(32, 32))
    assert [f.description.split(", ")[1] for f in frames] == [
        "azimuth 0°", "azimuth 90°", "azimuth 180°", "azimuth 270°",
    ]  # fmt: skip
    assert np.allclose(frames[1].right, (0, 1, 0), atol=1e-9)
    with pytest.raises(VolumeError, match="unknown mode"):
        render_volume(phantom, ct["bone"], Camera(), mode="mip")
    with pytest.raises(VolumeError, match="cannot render 0 x 10 pixels"):
        render_volume(phantom, ct["bone"], Camera(), size=(0, 10))
    with pytest.raises(VolumeError, match="at least two slices"):
        render_volume(replace(phantom, data=phantom.data[:1]), ct["bone"], Camera())


def test_importing_the_renderer_does_not_load_numba() -> None:
    code = "import sys, tui.render.vr; print('numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_shipped_presets_and_defaults() -> None:
    transfers = load_transfers()
    assert {"bone", "skin", "vessels", "lung"} <= set(transfers["CT"])
    assert "default" in transfers["MR"]
    assert find_transfer(transfers, "CT", None).name == "bone"  # the first is the default
    assert find_transfer(transfers, "PT", None).name == "default"  # else MR's default
    assert find_transfer(transfers, "MR", "Default").name == "default"
    # Listed in file order, as the app's number keys pick them.
    with pytest.raises(UserError, match=r"for CT: bone, skin, vessels, lung$"):
        find_transfer(transfers, "CT", "teeth")
    skin, bone = transfers["CT"]["skin"], transfers["CT"]["bone"]
    # Real anatomy: skin shows the air-tissue surface (-500 to 0 HU) and not lung (-850);
    # bone shows bone (above about 200 HU) and not soft tissue or contrast-free blood.
    opacity, _ = skin.classify(np.array([-850.0, -400.0, 0.0]))
    assert opacity[0] == 0 and opacity[1] > 0.3 and opacity[2] > 0.5
    opacity, _ = bone.classify(np.array([60.0, 120.0, 300.0, 1000.0]))
    assert opacity[0] == 0 and opacity[1] == 0 and opacity[2] > 0.2 and opacity[3] > 0.5


def test_a_user_file_extends_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "transfer.toml").write_text(
        "[CT.bone]\npoints = [[500, 0, 1, 1, 1], [600, 1, 1, 1, 1]]\nspecular = 0\n"
        "[ct.Teeth]\npoints = [[1500, 0, 1, 1, 1], [2000, 1, 1, 1, 1]]\n"
        "[PT.hot]\npoints = [[2, 0, 1, 0, 0], [5, 0.5, 1, 1, 0]]\n"
    )
    transfers = load_transfers(tmp_path)
    bone = transfers["CT"]["bone"]
    assert bone.points[0] == (500, 0, 1, 1, 1) and bone.specular == 0 and bone.diffuse == 0.7
    assert transfers["CT"]["teeth"].name == "teeth" and "skin" in transfers["CT"]
    assert find_transfer(transfers, "PT", None).name == "hot"
    assert find_transfer(transfers, "CT", "teeth").points[1][0] == 2000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[CT.bone]\npoints = [[500, 0, 1, 1]]\n", "transfer preset CT.bone: expected points"),
        ("[CT.bone]\npoints = [[500, 0, 1, 1, 1], [400, 1, 1, 1, 1]]\n", "must ascend"),
        ("[CT.bone]\npoints = [[500, 2, 1, 1, 1]]\n", "must be 0 to 1"),
        ("[CT.bone]\npoints = [[500, 0, 1, 1, 'x']]\n", "expected points"),
        ("[CT.bone]\npoints = [[500, 0, 1, 1, 1]]\nshine = 3\n", "unknown setting shine"),
        ("[CT.bone]\npoints = [[500, 0, 1, 1, 1]]\nambient = -1\n", "0 or more"),
        ("[CT]\nbone = [1, 2]\n", "transfer preset CT.bone: expected points"),
        ("CT = 3\n", r"\[CT\] must hold presets"),
        (
            "[CT.bone]\npoints = [[500, 0, 1, 1, 1]]\nspecular = 'shiny'\n",
            "CT.bone: specular must be a number, not 'shiny'",
        ),
        ("[CT.bone\npoints = 1\n", r"cannot read transfer presets \S+transfer.toml: .*line 1"),
    ],
)
def test_a_broken_user_file_is_one_line_user_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "transfer.toml").write_text(text)
    with pytest.raises(UserError, match=message) as raised:
        load_transfers(tmp_path)
    assert "\n" not in str(raised.value)
