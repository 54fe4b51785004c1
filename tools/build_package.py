"""Build the extension zips, one per platform, as ``blender --command extension build --split-platforms``.

Each zip is named ``{id}-{version}-{platform}.zip`` (``linux_x64``, ...), holds the package at its root,
only that platform's wheels, and the manifest with a ``[build.generated]`` table naming that platform and
those wheels. Files matching ``[build].paths_exclude_pattern`` (gitignore-like) are left out.

Usage: python tools/build_package.py [--output-dir dist] [--platform linux-x64 ...]
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import tomllib
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = "blender_manifest.toml"
DEFAULT_EXCLUDE = ["__pycache__/", ".*", "/*.zip", "*.blend[1-9]"]
_WHEEL_SYSTEMS = {"manylinux": "linux", "musllinux": "linux", "linux": "linux",
                  "win": "windows", "macosx": "macos"}
_WHEEL_MACHINES = {"x86_64": "x64", "amd64": "x64",
                   "aarch64": "arm64", "arm64": "arm64", "universal2": "universal2"}
_NO_COMPRESS = (".whl", ".zip", ".png", ".jpg", ".gz", ".xz", ".zst")


def wheel_platforms(wheel_path: str) -> set[str] | None:
    """Blender platforms a wheel runs on (``linux-x64``, ...); None for a pure ``any`` wheel."""
    tags = os.path.basename(wheel_path)[: -len(".whl")].split("-")[-1]
    if tags == "any":
        return None
    platforms = set()
    for tag in tags.split("."):
        system, _, rest = tag.partition("_")
        system = next((name for prefix, name in _WHEEL_SYSTEMS.items() if system.startswith(prefix)), system)
        machines = [m for tail, m in _WHEEL_MACHINES.items() if rest == tail or rest.endswith("_" + tail)]
        machine = machines[0] if machines else ""
        if machine == "universal2":
            platforms.update({f"{system}-x64", f"{system}-arm64"})
        elif machine:
            platforms.add(f"{system}-{machine}")
    return platforms


def wheels_for(platform: str, wheels: list[str]) -> list[str]:
    """The manifest's wheels that install on ``platform``, in manifest order."""
    return [wheel for wheel in wheels if (found := wheel_platforms(wheel)) is None or platform in found]


def _excluded(relative: str, is_dir: bool, patterns: list[str]) -> bool:
    """gitignore-like test for the simple patterns manifests use (``/x`` anchors, ``x/`` is a folder)."""
    name = relative.rsplit("/", 1)[-1]
    for pattern in patterns:
        if pattern.endswith("/"):
            if not is_dir:
                continue
            pattern = pattern[:-1]
        if pattern.startswith("/"):
            if fnmatch.fnmatchcase(relative, pattern[1:]):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def package_files(root: str, patterns: list[str], skip: set[str]) -> list[str]:
    """Relative paths (forward slashes) of the files that go into the package."""
    found = []

    def walk(folder: str) -> None:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_symlink():
                continue
            relative = os.path.relpath(entry.path, root).replace(os.sep, "/")
            if _excluded(relative, entry.is_dir(), patterns):
                continue
            if entry.is_dir():
                walk(entry.path)
            elif entry.is_file() and relative.lower() not in skip:
                found.append(relative)

    walk(root)
    return found


def check_manifest(manifest: dict) -> list[str]:
    """Blender's rules for short texts (tagline, permission reasons): at most 64 characters, no final dot."""
    texts = {"tagline": manifest.get("tagline", "")}
    texts.update({f"permissions.{key}": value for key, value in manifest.get("permissions", {}).items()})
    errors = []
    for key, value in texts.items():
        if not value or len(value) > 64 or not (value[-1].isalnum() or value[-1] in ")]}"):
            errors.append(f"{key}: 1 to 64 characters, ending in a letter, digit or bracket: {value!r}")
    for key in ("id", "version", "name", "maintainer", "type", "blender_version_min", "license"):
        if not manifest.get(key):
            errors.append(f"{key} is missing")
    return errors


def generated_table(platform: str, wheels: list[str]) -> str:
    """What Blender appends to a split package's manifest."""
    listed = ", ".join(f'"{wheel}"' for wheel in wheels)
    return (
        "\n\n# BEGIN GENERATED CONTENT.\n# This must not be included in source manifests.\n"
        f'[build.generated]\nplatforms = ["{platform}"]\nwheels = [{listed}]\n# END GENERATED CONTENT.\n'
    )


def build(root: str = ROOT, output_dir: str | None = None, platforms: list[str] | None = None) -> list[str]:
    """Write one zip per platform into ``output_dir`` (default ``root/dist``); return their paths."""
    manifest_path = os.path.join(root, MANIFEST)
    with open(manifest_path, "rb") as handle:
        manifest_bytes = handle.read()
    manifest = tomllib.loads(manifest_bytes.decode("utf-8"))
    if errors := check_manifest(manifest):
        raise SystemExit(f"{manifest_path}: " + "; ".join(errors))
    if "generated" in manifest.get("build", {}):
        raise SystemExit(f"{manifest_path}: [build.generated] is reserved for built packages")
    declared = manifest.get("platforms") or []
    for platform in platforms or []:
        if platform not in declared:
            raise SystemExit(f"platform {platform!r} is not in the manifest's platforms {declared}")
    wheels = manifest.get("wheels") or []
    for wheel in wheels:
        if not os.path.isfile(os.path.join(root, wheel)):
            raise SystemExit(f"wheel listed in the manifest is missing: {wheel}")
    patterns = manifest.get("build", {}).get("paths_exclude_pattern", DEFAULT_EXCLUDE)
    skip = {MANIFEST} | {os.path.normpath(wheel).replace(os.sep, "/").lower() for wheel in wheels}
    files = package_files(root, patterns, skip)
    if "__init__.py" not in files:
        raise SystemExit("not a Python package: no __init__.py at the extension root")
    output_dir = output_dir or os.path.join(root, "dist")
    os.makedirs(output_dir, exist_ok=True)
    built = []
    for platform in platforms or declared:
        platform_wheels = wheels_for(platform, wheels)
        name = f"{manifest['id']}-{manifest['version']}-{platform.replace('-', '_')}.zip"
        path = os.path.join(output_dir, name)
        temporary = os.path.join(output_dir, "." + name)
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            text = manifest_bytes + generated_table(platform, platform_wheels).encode("utf-8")
            archive.writestr(MANIFEST, text)
            for relative in [os.path.normpath(w).replace(os.sep, "/") for w in platform_wheels] + files:
                stored = zipfile.ZIP_STORED if relative.endswith(_NO_COMPRESS) else zipfile.ZIP_DEFLATED
                archive.write(os.path.join(root, relative), relative, compress_type=stored)
        os.replace(temporary, path)
        built.append(path)
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=None, help="where the zips go (default: dist/)")
    parser.add_argument("--platform", action="append", help="build only this platform (repeatable)")
    args = parser.parse_args(argv)
    for path in build(output_dir=args.output_dir, platforms=args.platform):
        print(f"built {os.path.relpath(path)} ({os.path.getsize(path) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
