"""Sanitizing what page authors write before a visitor's browser sees it: HTML through ammonia (nh3) with an
allow-list, stylesheets through a CSS tokenizer (tinycss2), links and image sources by scheme. Scripts never
pass: a page runs only the product's own scripts (the site, booking and chat scripts served by the API)."""

from __future__ import annotations

import copy
from urllib.parse import urlsplit

import nh3
import tinycss2

LAYOUT_TAGS = {"section", "main", "video", "source", "picture", "button"}
TAGS = set(nh3.ALLOWED_TAGS) | LAYOUT_TAGS
ATTRIBUTES: dict[str, set[str]] = copy.deepcopy(nh3.ALLOWED_ATTRIBUTES)
ATTRIBUTES.setdefault("*", set()).update({"class", "id", "style", "title", "lang", "dir", "role", "aria-label",
                                          "aria-hidden"})
ATTRIBUTES["a"] = ATTRIBUTES.get("a", set()) | {"target"}
ATTRIBUTES["img"] = ATTRIBUTES.get("img", set()) | {"loading", "srcset"}
ATTRIBUTES["video"] = {"src", "poster", "controls", "autoplay", "muted", "loop", "playsinline", "width", "height"}
ATTRIBUTES["source"] = {"src", "srcset", "type", "media"}
ATTRIBUTES["button"] = {"type"}
# style attributes keep only presentational properties (no position:fixed overlays, no behaviours)
STYLE_PROPERTIES = {
    "color", "background-color", "background", "font-size", "font-weight", "font-style", "font-family",
    "text-align", "text-decoration", "text-transform", "line-height", "letter-spacing", "margin", "margin-top",
    "margin-bottom", "margin-left", "margin-right", "padding", "padding-top", "padding-bottom", "padding-left",
    "padding-right", "border", "border-radius", "border-color", "border-width", "border-style", "width",
    "max-width", "min-width", "height", "max-height", "min-height", "display", "gap", "flex", "flex-direction",
    "flex-wrap", "justify-content", "align-items", "grid-template-columns", "opacity", "box-shadow",
    "vertical-align", "object-fit", "list-style", "white-space",
}
URL_SCHEMES = {"http", "https", "mailto", "tel"}
# CSS: rules that load or run something, and properties that were script vectors in some browser
CSS_BANNED_AT_RULES = {"import", "charset", "namespace", "document", "-moz-document"}
CSS_BANNED_WORDS = ("expression", "javascript:", "vbscript:", "behavior", "-moz-binding", "@import")


def html(fragment: str | None) -> str:
    """Author HTML with scripts, event handlers, frames, forms and dangerous URLs removed."""
    if not fragment:
        return ""
    return nh3.clean(fragment, tags=TAGS, attributes=ATTRIBUTES, clean_content_tags={"script", "style"},
                     url_schemes=URL_SCHEMES, filter_style_properties=STYLE_PROPERTIES,
                     link_rel="noopener noreferrer nofollow", strip_comments=True)


def url(value: str | None, *, images: bool = False) -> str:
    """A link or image address safe to put in an attribute: relative, http(s), mailto/tel (not for images);
    anything else (javascript:, data:, vbscript:, however obfuscated) becomes '#'."""
    # browsers drop leading C0 controls and spaces, and tabs/newlines anywhere, before reading the scheme
    value = "".join(ch for ch in (value or "") if ch not in "\t\n\r").lstrip("".join(map(chr, range(33))))
    if not value:
        return "#"
    scheme = urlsplit(value).scheme.lower()
    if not scheme:
        return value
    allowed = {"http", "https"} if images else URL_SCHEMES
    return value if scheme in allowed else "#"


def _safe_url_token(token: tinycss2.ast.Node) -> bool:
    if token.type in ("bad-url", "error"):
        return False
    if token.type == "url":
        return urlsplit(token.value.strip()).scheme.lower() in ("", "http", "https")
    if token.type == "function" and token.lower_name == "url":
        inner = "".join(t.value for t in token.arguments if t.type == "string")
        return urlsplit(inner.strip()).scheme.lower() in ("", "http", "https")
    if token.type == "function" and token.lower_name in ("expression", "image-set", "element"):
        return False
    return all(_safe_url_token(t) for t in getattr(token, "arguments", None) or [])


def _safe_declarations(content: list[tinycss2.ast.Node]) -> str:
    kept = []
    for decl in tinycss2.parse_blocks_contents(content, skip_comments=True, skip_whitespace=True):
        if decl.type != "declaration":
            continue
        if any(word in decl.lower_name for word in ("behavior", "binding")):
            continue
        if not all(_safe_url_token(t) for t in decl.value):
            continue
        important = " !important" if decl.important else ""
        kept.append(f"{decl.name}:{tinycss2.serialize(decl.value).strip()}{important}")
    return ";".join(kept)


def css(stylesheet: str | None) -> str:
    """An author stylesheet rebuilt from its parsed rules: no @import, no script URLs or expressions, and
    nothing that could close the surrounding <style> element."""
    if not stylesheet:
        return ""
    out: list[str] = []
    for rule in tinycss2.parse_stylesheet(stylesheet, skip_comments=True, skip_whitespace=True):
        if rule.type == "qualified-rule":
            prelude = tinycss2.serialize(rule.prelude).strip()
            if "<" in prelude or any(t.type in ("bad-url", "error") for t in rule.prelude):
                continue  # no selector holds "<": markup smuggled into the stylesheet
            out.append(f"{prelude}{{{_safe_declarations(rule.content)}}}")
        elif rule.type == "at-rule" and rule.lower_at_keyword not in CSS_BANNED_AT_RULES:
            prelude = tinycss2.serialize(rule.prelude).strip()
            if rule.content is None:
                continue
            if rule.lower_at_keyword in ("media", "supports", "container"):
                out.append(f"@{rule.at_keyword} {prelude}{{{css(tinycss2.serialize(rule.content))}}}")
            elif rule.lower_at_keyword in ("font-face", "page"):
                out.append(f"@{rule.at_keyword} {prelude}{{{_safe_declarations(rule.content)}}}")
            elif rule.lower_at_keyword.endswith("keyframes"):
                frames = [f"{tinycss2.serialize(r.prelude).strip()}{{{_safe_declarations(r.content)}}}"
                          for r in tinycss2.parse_rule_list(rule.content, skip_comments=True, skip_whitespace=True)
                          if r.type == "qualified-rule"]
                out.append(f"@{rule.at_keyword} {prelude}{{{''.join(frames)}}}")
    text = "\n".join(out)
    lowered = text.lower()
    if any(word in lowered for word in CSS_BANNED_WORDS):
        text = "\n".join(line for line in out if not any(w in line.lower() for w in CSS_BANNED_WORDS))
    # "<" cannot end a <style> element when written as a CSS escape
    return text.replace("<", "\\3c ")
