"""The page template that makes `dvc plots show` / `dvc plots diff` work offline.

    python scripts/offline_plots_template.py        # rewrites .dvc/plots/offline.html

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so without a network the page is blank
("vegaEmbed is not defined"). `.dvc/config` sets `plots.html_template = plots/offline.html` (DVC reads a
relative path from the .dvc directory); this script writes that file: DVC's own page layout with the three
libraries inlined, as bundled by the pinned `vl-convert-python` (the `report` extra). Rerun it after
upgrading vl-convert-python and commit the result, so that a fresh clone needs nothing installed to view plots.
"""

import sys
from pathlib import Path

import vl_convert
from dvc_render.html import PAGE_HTML
from dvc_render.vega_templates import LinearTemplate

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere in the repo

from stages.lib.files import atomic_path  # noqa: E402

TEMPLATE_PATH = REPO_ROOT / ".dvc" / "plots" / "offline.html"


def vegalite_version(schema_url: str) -> str:
    """The newest Vega-Lite that vl-convert bundles with the major version of a spec's `$schema` URL.

    DVC's templates declare `.../vega-lite/v5.json` (the confusion template still uses v4's `selection`), so
    they are rendered with the Vega-Lite 5 they were written for, not with vl-convert's newest.
    """
    major = schema_url.rsplit("/", 1)[-1].removesuffix(".json").removeprefix("v").split(".")[0]
    matching = [v for v in vl_convert.get_vegalite_versions() if v.split(".")[0] == major]
    if not matching:
        raise ValueError(f"vl-convert-python {vl_convert.__version__} bundles no Vega-Lite {major} "
                         f"(needed by $schema {schema_url}); it has {vl_convert.get_vegalite_versions()}. "
                         "Pin a vl-convert-python that does in pyproject.toml's `report` extra.")
    return max(matching, key=lambda v: tuple(int(part) for part in v.split(".")))


def offline_page() -> str:
    """DVC's page template with vega, vega-lite and vega-embed inlined in place of its CDN `{scripts}`."""
    bundle = vl_convert.javascript_bundle(vl_version=vegalite_version(LinearTemplate.DEFAULT_CONTENT["$schema"]))
    # The bundle is a classic script whose top-level `const`s (minified names) would be page globals: one
    # named like the `var spec` of each plot's inline script would make that script a SyntaxError. In a
    # function scope they stay private; the bundle still sets window.vegaEmbed for those scripts.
    script = f"<script>\n(() => {{\n{bundle}\n}})();\n</script>"
    return PAGE_HTML.replace("{scripts}", script) + "\n"


def main() -> None:
    with atomic_path(TEMPLATE_PATH) as tmp:
        tmp.write_text(offline_page(), encoding="utf-8")  # the bundle has non-ASCII; DVC reads it as UTF-8
    print(f"wrote {TEMPLATE_PATH.relative_to(REPO_ROOT)} (vl-convert-python {vl_convert.__version__})",
          file=sys.stderr)


if __name__ == "__main__":
    main()
