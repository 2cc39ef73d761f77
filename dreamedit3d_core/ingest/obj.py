"""Wavefront OBJ + MTL reader (our own: trimesh's merges objects and silently skips broken faces).

Parts are the file's objects (`o`), or its groups (`g`) where it has no objects, or the whole file.
Polygons are triangulated as fans. Faces with fewer than 3 vertices, out-of-range or zero indices and
non-finite coordinates refuse the file, naming the line. Material library and texture names may contain
spaces; they are resolved by `sources.SourceResolver` (the same parsing lists them in `source_files`).

Each material library is parsed once per asset however often `mtllib` names it (`MaterialLibraries`), and
what an OBJ can make the reader do is counted against limits as it goes: `mtllib` references, materials,
texture statements, vertices and faces. Lines are read one at a time, never split into a list up front.
"""

from __future__ import annotations

import io
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from dreamedit3d_core.ingest.asset import AssetError, Material, Part
from dreamedit3d_core.ingest.limits import check_count, check_texture, decode_texture, image_size
from dreamedit3d_core.ingest.reference_resolver import SourceFile, SourceResolver

DEFAULT_MATERIAL = Material(name="default", base_color=(0.8, 0.8, 0.8, 1.0), metallic=0.0, roughness=0.5)
# arguments taken by each map_Kd option (-o/-s/-t take up to 3 numbers)
_TIME_CHECK_LINES = 65536  # lines between two looks at the time budget
_MAP_OPTIONS = {"-blendu": 1, "-blendv": 1, "-bm": 1, "-boost": 1, "-cc": 1, "-clamp": 1, "-imfchan": 1,
                "-texres": 1, "-mm": 2, "-o": 3, "-s": 3, "-t": 3}  # fmt: skip


@dataclass
class _ObjGroup:
    corners_v: array = field(default_factory=lambda: array("q"))  # 3 per triangle
    corners_vt: array = field(default_factory=lambda: array("q"))  # 3 per triangle, -1 without texture coordinates
    materials: array = field(default_factory=lambda: array("i"))  # 1 per triangle
    lines: array = field(default_factory=lambda: array("q"))  # 1 per triangle: its face's line number


def _resolve(index_text: str, count: int, path: Path, lineno: int, what: str) -> int:
    try:
        index = int(index_text)
    except ValueError:
        raise AssetError(f"{path.name}: line {lineno}: bad {what} index {index_text!r}") from None
    if index == 0:
        raise AssetError(f"{path.name}: line {lineno}: {what} index 0 (OBJ indices start at 1)")
    # negative indices count back from the last element defined so far
    if index < 0 and count + index < 0:
        raise AssetError(f"{path.name}: line {lineno}: {what} index {index} out of range ({count} defined so far)")
    return index - 1 if index > 0 else count + index


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _texture_name(rest: str) -> str:
    """The file name after any map_Kd options (`-s 1 1 1 -bm 0.5 my texture.png` -> `my texture.png`)."""
    tokens = rest.split()
    i = 0
    while i < len(tokens) and tokens[i] in _MAP_OPTIONS:
        option = tokens[i]
        i += 1
        for _ in range(_MAP_OPTIONS[option]):
            numeric = option not in ("-blendu", "-blendv", "-cc", "-clamp", "-imfchan")
            if i >= len(tokens) - 1 or (numeric and not _is_number(tokens[i])):
                break
            i += 1
    return " ".join(tokens[i:])


def lines(text: str) -> Iterator[str]:
    """The lines of a text whose line ends are "\\n" (see `obj_text`), one at a time: a file's lines are never
    all in memory as separate strings."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        yield text[start:end]
        start = end + 1


def mtl_statements(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, keyword, rest) of each `newmtl` and of each statement inside a material."""
    inside_material = False
    for lineno, line in enumerate(lines(text), start=1):
        keyword, rest = _split_keyword(line)
        inside_material = inside_material or keyword == "newmtl"
        if inside_material:
            yield lineno, keyword, rest


def texture_file(rest: str, library: SourceFile, files: SourceResolver) -> SourceFile | None:
    """The image a `map_Kd` statement names: the statement as written, else the file name after its options."""
    return files.find(list(dict.fromkeys([rest, _texture_name(rest)])), library, "texture")


@dataclass
class MaterialLibrary:
    """One parsed MTL file: its materials by name, the texture file of each material that names one that
    exists (not decoded here: only the textures of materials the OBJ uses are), and its warnings."""

    materials: dict[str, Material]
    textures: dict[str, SourceFile]
    warnings: list[str]


class MaterialLibraries:
    """The material libraries of one OBJ, each parsed once however often `mtllib` lines name it, with running
    counts of `mtllib` references, materials and texture statements checked against the limits (an OBJ that
    names a large library a thousand times costs one parse, or is refused)."""

    def __init__(self, files: SourceResolver) -> None:
        self.files = files
        self._parsed: dict[str, MaterialLibrary] = {}
        self._references = self._materials = self._texture_statements = 0

    def named(self, rest: str) -> list[tuple[str, SourceFile | None]]:
        """The libraries of an `mtllib` line: the whole line if it names a file (names may contain spaces),
        else each word (`mtllib a.mtl b.mtl`); None for a library that is not found."""
        files = self.files
        whole = files.find([rest], files.main, "material library")
        names = [rest] if whole is not None else rest.split()
        self._count("max_material_libraries", len(names), "_references", "material library references (mtllib)")
        if whole is not None:
            return [(rest, whole)]
        return [(name, files.find([name], files.main, "material library")) for name in names]

    def parse(self, library: SourceFile) -> MaterialLibrary:
        """The library's materials and textures; unreadable lines and missing textures are its warnings (the
        geometry is still good)."""
        if library.relative not in self._parsed:
            self._parsed[library.relative] = self._parse(library)
        return self._parsed[library.relative]

    def _parse(self, library: SourceFile) -> MaterialLibrary:
        files, parsed = self.files, MaterialLibrary({}, {}, [])
        current: Material | None = None
        text = files.read(library).decode("utf-8", errors="replace")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        for lineno, keyword, rest in mtl_statements(text):
            if lineno % _TIME_CHECK_LINES == 0:
                files.check_time()
            if keyword == "newmtl":
                self._count("max_materials", 1, "_materials", "materials in its material libraries")
                current = Material(name=rest or f"material_{len(parsed.materials)}", metallic=0.0, roughness=0.5)
                parsed.materials[current.name] = current
                parsed.textures.pop(current.name, None)
                continue
            if current is None or keyword not in ("Kd", "Ns", "Pm", "map_Kd"):
                continue
            if keyword == "map_Kd":
                self._count("max_texture_references", 1, "_texture_statements", "texture statements (map_Kd)")
                texture = texture_file(rest, library, files)  # refuses files outside the asset's folder
                if texture is None:
                    parsed.warnings.append(
                        f"{library.path.name}: texture {rest!r} of material {current.name!r} not found"
                    )
                else:
                    parsed.textures[current.name] = texture
                continue
            try:
                _apply_mtl_line(current, keyword, rest)
            except (ValueError, IndexError) as error:
                parsed.warnings.append(f"{library.path.name}: line {lineno}: {keyword} ignored ({error})")
        return parsed

    def _count(self, limit: str, more: int, counter: str, what: str) -> None:
        setattr(self, counter, getattr(self, counter) + more)
        check_count(self.files.limits, limit, getattr(self, counter), self.files.main.relative, what)


def _apply_mtl_line(material: Material, keyword: str, rest: str) -> None:
    if keyword == "Kd":
        rgb = [float(x) for x in rest.split()[:3]]
        if len(rgb) != 3:
            raise ValueError("needs 3 numbers")
        material.base_color = (*rgb, material.base_color[3])
    elif keyword == "Ns":
        # Blender's OBJ importer maps the specular exponent to roughness this way
        material.roughness = float(1.0 - np.sqrt(np.clip(float(rest.split()[0]), 0.0, 1000.0) / 1000.0))
    elif keyword == "Pm":
        material.metallic = float(rest.split()[0])


def _load_textures(
    used: list[Material], textures: dict[str, SourceFile], files: SourceResolver, warnings: list[str]
) -> None:
    """Decode the texture of each used material: every header checked against the limits first, then each
    image decoded; an image that cannot be read is a warning (that material has no texture)."""
    readable = []
    for material in used:
        file = textures.get(material.name)
        if file is None:
            continue
        where = f"{files.main.relative}: texture {file.relative!r} of material {material.name!r}"
        try:
            size = image_size(files.read(file), where)
        except AssetError as error:
            warnings.append(f"{error} (the material has no texture)")
            continue
        check_texture(files.limits, len(readable) + 1, size, where)
        readable.append((material, file, where))
    for material, file, where in readable:
        try:
            material.texture = decode_texture(files.read(file), files.limits, where)
        except AssetError as error:
            warnings.append(f"{error} (the material has no texture)")


def _split_keyword(line: str) -> tuple[str, str]:
    words = line.strip().split(None, 1)
    return (words[0], words[1].strip() if len(words) > 1 else "") if words else ("", "")


def obj_text(path: Path, raw: bytes) -> str:
    """The OBJ file as text, continuation lines (ending in a backslash) joined."""
    if not raw.strip():
        raise AssetError(f"{path.name}: empty file")
    if b"\0" in raw:
        raise AssetError(f"{path.name}: binary data, not a text OBJ file")
    text = raw.decode("utf-8", errors="replace").replace("\\\r\n", " ").replace("\\\n", " ")
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def obj_statements(text: str, only: str | None = None) -> Iterator[tuple[int, str, str, str]]:
    """(line number, line, keyword, rest) of each line; `only` keeps the lines with that keyword (fast)."""
    for lineno, line in enumerate(lines(text), start=1):
        if only is not None and only not in line:
            continue
        keyword, rest = _split_keyword(line)
        if only is None or keyword == only:
            yield lineno, line, keyword, rest


def obj_references(files: SourceResolver) -> list[SourceFile]:
    """The material libraries and the textures `read_obj` opens (those that exist): the textures of the
    materials the OBJ's `usemtl` lines name, as the last library defining each has it.

    Reads the OBJ's `mtllib` and `usemtl` lines and the libraries' materials, under the same limits as
    `read_obj`; [] for a file `read_obj` refuses before it reaches a library."""
    raw = files.read(files.main)  # its size limit and the time budget refuse the asset here too
    try:
        text = obj_text(files.main.path, raw)
    except AssetError:
        return []
    libraries = MaterialLibraries(files)
    found: list[SourceFile] = []
    textures: dict[str, SourceFile] = {}
    for _, _, _, rest in obj_statements(text, only="mtllib"):
        files.check_time()
        for _, library in libraries.named(rest):
            if library is not None:
                found.append(library)
                _use_library(libraries.parse(library), {}, textures)
    used = {rest for _, _, _, rest in obj_statements(text, only="usemtl")}
    found.extend(texture for name, texture in textures.items() if name in used)
    return found


def _use_library(library: MaterialLibrary, materials: dict[str, Material], textures: dict[str, SourceFile]) -> None:
    """Add a library's materials; the last library defining a material decides its texture (or that it has
    none)."""
    materials.update(library.materials)
    for name in library.materials:
        textures.pop(name, None)
    textures.update(library.textures)


def read_obj(files: SourceResolver) -> tuple[list[Part], list[Material], list[str]]:
    """Parts in the file's own coordinates, the materials they index, and warnings."""
    path = files.main.path
    text = obj_text(path, files.read(files.main))

    warnings: list[str] = []
    positions = array("d")  # x, y, z of each vertex, one after another
    colors: dict[int, list[float]] = {}
    position_lines = array("q")
    texcoords = array("d")  # u, v of each texture coordinate
    num_positions = num_texcoords = num_normals = num_triangles = 0
    limits = files.limits
    libraries, used_libraries = MaterialLibraries(files), set()
    library: dict[str, Material] = {}
    textures: dict[str, SourceFile] = {}
    materials: list[Material] = []
    material_index: dict[str, int] = {}
    groups: dict[str, _ObjGroup] = {}
    object_name: str | None = None
    group_name: str | None = None
    current_material = -1

    def material_id(name: str) -> int:
        if name not in material_index:
            check_count(limits, "max_materials", len(materials) + 1, path.name, "materials used (usemtl)")
            if name not in library and name != DEFAULT_MATERIAL.name:
                warnings.append(f"{path.name}: material {name!r} is not in any material library")
            found = library.get(name)
            materials.append(found if found is not None else replace(DEFAULT_MATERIAL, name=name))
            material_index[name] = len(materials) - 1
        return material_index[name]

    for lineno, line, keyword, rest in obj_statements(text):
        if lineno % _TIME_CHECK_LINES == 0:
            files.check_time()
        try:
            if keyword == "v":
                values = [float(x) for x in rest.split()[:6]]
                if len(values) < 3:
                    raise ValueError("fewer than 3 coordinates")
                num_positions += 1
                if num_positions > limits.max_vertices:
                    check_count(limits, "max_vertices", num_positions, path.name, "vertices")
                positions.extend(values[:3])
                position_lines.append(lineno)
                if len(values) >= 6:  # the common `v x y z r g b` vertex colour extension
                    colors[num_positions - 1] = values[3:6]
            elif keyword == "vt":
                values = [float(x) for x in rest.split()[:2]]
                num_texcoords += 1
                if num_texcoords > limits.max_vertices:
                    check_count(limits, "max_vertices", num_texcoords, path.name, "texture coordinates")
                texcoords.extend(values + [0.0] * (2 - len(values)))
            elif keyword == "vn":
                num_normals += 1
        except ValueError as error:
            raise AssetError(f"{path.name}: line {lineno}: bad {keyword!r} line {line.strip()!r} ({error})") from None
        if keyword == "o":
            object_name = rest or f"object_{len(groups)}"
        elif keyword == "g":
            group_name = rest or "default"
        elif keyword == "usemtl":
            current_material = material_id(rest)
        elif keyword == "mtllib":
            for name, found in libraries.named(rest):
                if found is None:
                    warnings.append(f"{path.name}: material library {name!r} not found")
                elif found.relative not in used_libraries:  # its warnings once, however often it is named
                    used_libraries.add(found.relative)
                    warnings.extend(libraries.parse(found).warnings)
                if found is not None:
                    _use_library(libraries.parse(found), library, textures)
        elif keyword == "f":
            name = object_name if object_name is not None else (group_name if group_name is not None else path.stem)
            if name not in groups:
                check_count(limits, "max_parts", len(groups) + 1, path.name, "objects or groups with faces")
            group = groups.setdefault(name, _ObjGroup())
            tokens = rest.split()
            if len(tokens) < 3:
                raise AssetError(f"{path.name}: line {lineno}: face with fewer than 3 vertices {line.strip()!r}")
            corners_v, corners_vt = [], []
            for token in tokens:
                v_text, _, tail = token.partition("/")
                vt_text, _, vn_text = tail.partition("/")
                corners_v.append(_resolve(v_text, num_positions, path, lineno, "vertex"))
                corners_vt.append(_resolve(vt_text, num_texcoords, path, lineno, "texture") if vt_text else -1)
                if vn_text and not 0 <= _resolve(vn_text, num_normals, path, lineno, "normal") < num_normals:
                    raise AssetError(f"{path.name}: line {lineno}: normal index out of range in {line.strip()!r}")
            if current_material < 0:
                current_material = material_id(DEFAULT_MATERIAL.name)
            num_triangles += len(tokens) - 2
            if num_triangles > limits.max_faces:
                check_count(limits, "max_faces", num_triangles, path.name, "triangles")
            for k in range(1, len(tokens) - 1):  # fan triangulation
                group.corners_v.extend([corners_v[0], corners_v[k], corners_v[k + 1]])
                group.corners_vt.extend([corners_vt[0], corners_vt[k], corners_vt[k + 1]])
                group.materials.append(current_material)
                group.lines.append(lineno)

    if not groups:
        raise AssetError(f"{path.name}: no geometry (no faces; {num_positions} vertices)")
    _load_textures(materials, textures, files, warnings)
    position_array = np.frombuffer(positions, dtype=np.float64).reshape(-1, 3)  # (N, 3)
    texcoord_array = np.frombuffer(texcoords, dtype=np.float64).reshape(-1, 2)  # (T, 2)
    color_array = None
    if colors:
        color_array = np.ones((num_positions, 3))
        color_array[list(colors)] = np.array(list(colors.values()))
        if color_array.max() > 1.0:  # some writers use 0..255
            color_array /= 255.0

    parts = []
    for name, group in groups.items():
        corners_v = np.frombuffer(group.corners_v, dtype=np.int64)
        corners_vt = np.frombuffer(group.corners_vt, dtype=np.int64)
        bad = (corners_v >= num_positions) | (corners_vt >= num_texcoords)
        if bad.any():
            lineno = group.lines[int(np.flatnonzero(bad)[0]) // 3]
            raise AssetError(
                f"{path.name}: line {lineno}: face index out of range "
                f"({num_positions} vertices, {num_texcoords} texture coordinates)"
            )
        nonfinite = ~np.isfinite(position_array[corners_v]).all(axis=1)
        if nonfinite.any():
            vertex = int(corners_v[np.flatnonzero(nonfinite)[0]])
            raise AssetError(f"{path.name}: line {position_lines[vertex]}: non-finite vertex coordinate")
        has_uvs = bool((corners_vt >= 0).any())
        keys = np.stack([corners_v, corners_vt if has_uvs else np.zeros_like(corners_v)], axis=1)  # (3F, 2)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        parts.append(
            Part(
                name=name,
                vertices=position_array[unique[:, 0]],
                faces=inverse.reshape(-1, 3).astype(np.int32),  # (3F,) -> (F, 3)
                face_materials=np.frombuffer(group.materials, dtype=np.int32).copy(),
                uvs=np.where(unique[:, 1:] >= 0, texcoord_array[unique[:, 1]], 0.0) if has_uvs else None,
                colors=None if color_array is None else _rgba_uint8(color_array[unique[:, 0]]),
            )
        )
    return parts, materials, warnings


def _rgba_uint8(rgb: np.ndarray) -> np.ndarray:
    rgba = np.concatenate([rgb, np.ones((len(rgb), 1))], axis=1)  # (N, 3) -> (N, 4)
    return np.clip(np.round(rgba * 255.0), 0, 255).astype(np.uint8)
