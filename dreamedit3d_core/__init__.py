"""DreamEdit3D core: pure computation (torch, numpy, trimesh, bpy scene code).

Nothing in this package knows where data lives: it never imports prefect, zarr, pyarrow or `storage`.
"""
