import dataclasses

import numpy as np

from datagen.synthetic import Scene, SceneObject, render_frame


def _surface_residual(obj: SceneObject, center: np.ndarray, points: np.ndarray) -> np.ndarray:
    """How far points (P, 3) are from the object's surface, in metres (0 = on the surface)."""
    local = points - center
    c, s = np.cos(-obj.yaw), np.sin(-obj.yaw)
    local = np.stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1], local[:, 2]], 1)
    half = np.asarray(obj.size) / 2
    if obj.shape == "sphere":
        return np.abs(np.linalg.norm(local, axis=1) - half[0])
    if obj.shape == "box":
        return np.abs(np.max(np.abs(local) - half, axis=1))  # on a face: one coordinate at its bound
    radial = np.hypot(local[:, 0], local[:, 1])
    side = np.abs(radial - half[0]) + np.maximum(np.abs(local[:, 2]) - half[2], 0)
    cap = np.abs(np.abs(local[:, 2]) - half[2]) + np.maximum(radial - half[0], 0)
    return np.minimum(side, cap)


def _backproject(scene: Scene, i: int, depth: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    cam = scene.camera
    z = depth[rows, cols].astype(np.float64)
    p_cam = np.stack([(cols - cam.cx) / cam.fx * z, (rows - cam.cy) / cam.fy * z, z], 1)
    return p_cam @ cam.cam_to_world(i).T + cam.positions[i]


def test_depth_lies_on_the_object_surfaces_and_the_ground(rendered):
    checked = 0
    for scene, _, depth, masks in rendered:
        for i in (0, scene.num_frames - 1):
            for obj in scene.objects:
                rows, cols = np.nonzero(masks[i] == obj.obj_id)
                if len(rows):
                    points = _backproject(scene, i, depth[i], rows, cols)
                    assert _surface_residual(obj, obj.centers[i], points).max() < 2e-3, obj.name
                    checked += 1
            rows, cols = np.nonzero((masks[i] == 0) & (depth[i] > 0))
            ground = _backproject(scene, i, depth[i], rows, cols)
            assert np.abs(ground[:, 2]).max() < 2e-3  # background with a depth is the ground plane z = 0
    assert checked >= 20


def test_sky_pixels_have_zero_depth_and_look_above_the_horizon(rendered):
    for scene, _, depth, masks in rendered:
        cam = scene.camera
        rows, cols = np.nonzero(depth[0] == 0)
        assert (masks[0][rows, cols] == 0).all()
        d_cam = np.stack([(cols - cam.cx) / cam.fx, (rows - cam.cy) / cam.fy, np.ones(len(rows))], 1)
        assert ((d_cam @ cam.cam_to_world(0).T)[:, 2] >= 0).all()


def test_projected_centres_match_mask_centroids_of_unoccluded_objects(rendered):
    checked = 0
    for scene, _, _, masks in rendered:
        for obj in scene.objects:
            alone = dataclasses.replace(scene, objects=(obj,))
            for i in (0, scene.num_frames // 2, scene.num_frames - 1):
                solo = render_frame(alone, i).mask == obj.obj_id
                full = masks[i] == obj.obj_id
                border = solo[0].any() or solo[-1].any() or solo[:, 0].any() or solo[:, -1].any()
                if border or not np.array_equal(solo, full) or full.sum() < 20:
                    continue  # occluded or cut by the image border: centroid is not the projected centre
                rows, cols = np.nonzero(full)
                u, v = scene.camera.project(scene.camera.to_camera(obj.centers[i], i))
                # A sphere's outline is centred on its projected centre up to a small perspective shift; the near
                # faces of a large box or cylinder look bigger, so their tolerance grows with the apparent size.
                tol = 1.5 if obj.shape == "sphere" else 2.0 + 0.05 * np.sqrt(full.sum())
                assert abs(cols.mean() - u) < tol and abs(rows.mean() - v) < tol, (obj.name, i)
                checked += 1
    assert checked >= 15


def test_z_buffer_keeps_the_nearer_object_and_exact_depth(make_scene, make_camera):
    near = SceneObject(1, "sphere", "red", (0.4, 0.4, 0.4), 0.0, np.array([[0.0, 3.0, 1.0]]))
    far = SceneObject(2, "box", "blue", (1.0, 1.0, 1.0), 0.3, np.array([[0.0, 6.0, 1.0]]))
    for objects in [(near, far), (far, near)]:  # order in the scene must not matter
        frame = render_frame(make_scene(make_camera([[0.0, 0.0, 1.0]]), *objects), 0)
        assert frame.mask[32, 32] == 1
        assert np.isclose(frame.depth[32, 32], 3.0 - 0.2, atol=1e-5)  # camera on the sphere's axis
        assert (frame.mask == 2).any()  # the box shows around the smaller sphere
        assert tuple(frame.rgb[32, 32]) != tuple(frame.rgb[32, 20])


def test_pixel_centre_convention_is_opencv(make_scene, make_camera):
    # A thin box whose centre projects exactly onto pixel (40, 32): x = (40 - 32) / 50 * 5 = 0.8 m at depth 5.
    post = SceneObject(1, "box", "green", (0.02, 0.02, 0.5), 0.0, np.array([[0.8, 5.0, 1.0]]))
    frame = render_frame(make_scene(make_camera([[0.0, 0.0, 1.0]]), post), 0)
    cols = np.nonzero((frame.mask == 1).any(axis=0))[0]
    assert cols.tolist() == [40]
