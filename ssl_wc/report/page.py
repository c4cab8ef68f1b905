"""The report's HTML page: one file, styles inlined, figures as data URIs, no scripts.

Nothing is loaded from elsewhere (no CDN, no web font, no script), so the page opens
offline and from ``file://``; figures are embedded (SVG when rendered, else PNG) and
also sit beside the page under ``figures/``.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from importlib.resources import files

MIME = {"svg": "image/svg+xml", "png": "image/png"}


def css() -> str:
    return files("ssl_wc.report").joinpath("report.css").read_text(encoding="utf-8")


def esc(text: object) -> str:
    return html.escape(str(text))


def data_uri(data: bytes, fmt: str) -> str:
    return f"data:{MIME[fmt]};base64," + base64.b64encode(data).decode("ascii")


def figure_html(name: str, title: str, caption: str, data: bytes, fmt: str,
                written: list[str]) -> str:
    links = " · ".join(f'<a href="figures/{esc(name)}.{f}">{f.upper()}</a>' for f in written)
    return (f'<figure id="fig-{esc(name)}"><img alt="{esc(title)}" src="{data_uri(data, fmt)}">'
            f'<figcaption><b>{esc(title)}.</b> {esc(caption)}'
            + (f' <span class="files">{links}</span>' if links else "")
            + "</figcaption></figure>")


@dataclass
class Section:
    """One section of the page: heading, lead text and HTML blocks in order."""

    key: str
    title: str
    lead: str = ""
    blocks: list[str] = field(default_factory=list)

    def html(self) -> str:
        lead = f'<p class="lead">{esc(self.lead)}</p>' if self.lead else ""
        return (f'<section id="{esc(self.key)}"><h2>{esc(self.title)}</h2>{lead}'
                + "".join(self.blocks) + "</section>")


def render(title: str, subtitle: str, banner: str | None, sections: list[Section],
           footer: str) -> str:
    toc = "".join(f'<li><a href="#{esc(s.key)}">{esc(s.title)}</a></li>' for s in sections)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # a data: icon: the browser asks for no /favicon.ico
        '<link rel="icon" href="data:,">',
        f"<title>{esc(title)}</title>", f"<style>{css()}</style>", "</head>", "<body>",
        f"<header><h1>{esc(title)}</h1><p class=\"meta\">{esc(subtitle)}</p>"
        + (f'<div class="banner">{esc(banner)}</div>' if banner else "")
        + f'<nav class="toc"><b>Contents</b><ol>{toc}</ol></nav></header>',
        "<main>", *(s.html() for s in sections), "</main>",
        f"<footer>{esc(footer)}</footer>", "</body>", "</html>", ""])
