"""From an upload to chunks: text, Markdown, HTML (main text only), PDF, CSV of question/answer pairs, and
funnel pages. Question/answer pairs always stay whole in one chunk (that is what retrieval must return);
prose is split with overlap on paragraph, line and sentence boundaries."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from typing import Any

from langchain_text_splitters import RecursiveCharacterTextSplitter

from services.errors import InvalidInput
from services.storable import storable

CHUNK_CHARS = 1000
OVERLAP_CHARS = 150
MAX_SOURCE_BYTES = 20 * 1024 * 1024
PARSED_TYPES = ("text", "markdown", "html", "pdf", "csv", "funnel_page")
_splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_CHARS, chunk_overlap=OVERLAP_CHARS,
                                           separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""])
QA_LINE = re.compile(r"^\s*(?:Q|Question)\s*[:.)-]\s*(?P<q>.+?)\s*\n\s*(?:A|Answer)\s*[:.)-]\s*(?P<a>.+?)\s*$",
                     re.IGNORECASE | re.DOTALL)


def digest(*parts: str) -> str:
    """SHA-256 of whitespace-normalized parts: the same text uploaded twice hashes the same."""
    normal = "\x1f".join(" ".join(p.split()) for p in parts)
    return hashlib.sha256(normal.encode()).hexdigest()


@dataclass
class Chunk:
    """One retrievable unit: a whole Q&A pair, or a piece of prose."""

    question: str | None = None
    answer: str | None = None
    content: str | None = None
    category: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """What gets embedded (and shown to the model)."""
        if self.question:
            return f"{self.question}\n{self.answer or ''}".strip()
        return self.content or ""

    def hash(self) -> str:
        return digest(self.question or "", self.answer or "", self.content or "")


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("The file is not text in UTF-8 or Windows-1252.", field="file")


def html_main_text(html: str) -> str:
    """The readable main text of a page: <main> or <article> when present, without scripts, styles,
    navigation, headers, footers, forms or hidden elements; headings become Markdown headings."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside", "form",
                     "iframe"]):
        tag.decompose()
    for tag in soup.select("[hidden], [aria-hidden=true]"):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    for level in range(1, 7):
        for heading in root.find_all(f"h{level}"):
            heading.replace_with(f"\n\n{'#' * level} {heading.get_text(' ', strip=True)}\n\n")
    for block in root.find_all(["p", "li", "tr", "br", "div", "section", "dt", "dd"]):
        block.insert_after("\n")
    text = root.get_text("")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def pdf_text(data: bytes) -> str:
    """The text layer of every page (a scanned PDF without one is refused: there is nothing to search)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise InvalidInput(f"Not a readable PDF: {exc}", field="file") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise InvalidInput("The PDF has no text layer (a scan?); nothing could be extracted.", field="file")
    return text


def qa_from_csv(data: bytes | str) -> list[Chunk]:
    """Rows of question,answer[,category][,tags] (a header row names them; tags split on ; or |)."""
    rows = list(csv.DictReader(io.StringIO(_decode(data))))
    if not rows:
        raise InvalidInput("The CSV has no rows.", field="file")
    columns = {c.strip().lower(): c for c in rows[0] if c}
    if "question" not in columns or "answer" not in columns:
        raise InvalidInput("The CSV needs 'question' and 'answer' columns.", field="file")
    chunks = []
    for number, raw in enumerate(rows, start=2):
        question = (raw.get(columns["question"]) or "").strip()
        answer = (raw.get(columns["answer"]) or "").strip()
        if not question and not answer:
            continue
        if not question or not answer:
            raise InvalidInput(f"Row {number} has a question without an answer or the reverse.", field="file")
        tags = [t.strip() for t in re.split(r"[;|]", raw.get(columns.get("tags", ""), "") or "") if t.strip()]
        chunks.append(Chunk(question=question, answer=answer,
                            category=(raw.get(columns.get("category", ""), "") or "").strip() or None, tags=tags))
    return chunks


def _prose(text: str, heading: str | None = None) -> list[Chunk]:
    pieces = _splitter.split_text(text)
    prefix = f"{heading}\n" if heading else ""
    return [Chunk(content=prefix + p, metadata={"heading": heading} if heading else {}) for p in pieces if p.strip()]


HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def markdown_sections(text: str) -> list[tuple[list[str], str]]:
    """(heading path, body) per section; blank lines inside a body are kept (they separate paragraphs), and
    a '#' inside a fenced code block is not a heading."""
    sections: list[tuple[list[str], str]] = []
    path: list[str] = []
    levels: list[int] = []
    body: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else HEADING.match(line)
        if match is None:
            body.append(line)
            continue
        sections.append((list(path), "\n".join(body).strip()))
        body = []
        level = len(match[1])
        while levels and levels[-1] >= level:
            levels.pop()
            path.pop()
        levels.append(level)
        path.append(match[2].strip())
    sections.append((list(path), "\n".join(body).strip()))
    return [(p, b) for p, b in sections if b]


def chunk_markdown(text: str) -> list[Chunk]:
    """Sections by heading; a heading that asks a question and its body form one Q&A chunk; explicit
    'Q: ... A: ...' paragraphs too; everything else is prose with overlap (the heading path kept in front)."""
    chunks: list[Chunk] = []
    for headings, body in markdown_sections(text):
        last = headings[-1] if headings else None
        if last and last.endswith("?"):
            category = headings[0] if len(headings) > 1 else None
            chunks.append(Chunk(question=last, answer=body, category=category))
            continue
        chunks.extend(chunk_plain(body, heading=" > ".join(headings) or None))
    return chunks


def chunk_plain(text: str, heading: str | None = None) -> list[Chunk]:
    """Paragraphs shaped 'Q: ...\\nA: ...' become whole pairs; the rest is split prose."""
    chunks: list[Chunk] = []
    prose: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        match = QA_LINE.match(paragraph)
        if match:
            chunks.append(Chunk(question=" ".join(match["q"].split()), answer=" ".join(match["a"].split()),
                                category=heading))
        elif paragraph.strip():
            prose.append(paragraph.strip())
    if prose:
        chunks.extend(_prose("\n\n".join(prose), heading))
    return chunks


def extract(source_type: str, data: bytes | str) -> str:
    """The searchable text of an upload (CSV keeps its raw text: its rows are parsed at chunking)."""
    if len(data) > MAX_SOURCE_BYTES:
        raise InvalidInput(f"Sources are limited to {MAX_SOURCE_BYTES // (1024 * 1024)} MB.", field="file")
    if source_type == "pdf":
        if isinstance(data, str):
            raise InvalidInput("Upload a PDF as a file.", field="file")
        text = pdf_text(data)
    elif source_type in ("html", "funnel_page"):
        text = html_main_text(_decode(data))
    elif source_type in ("text", "markdown", "csv", "manual"):
        text = _decode(data).replace("\r\n", "\n").strip()
    else:
        raise InvalidInput(f"source_type is one of {', '.join(PARSED_TYPES)}.", field="source_type")
    # a NUL in a file's text (a binary byte in a text file, a PDF's text layer) means nothing to a reader, and
    # Postgres text cannot hold it: dropped, as the channels drop it from messages
    text = storable(text)
    if not text.strip():
        raise InvalidInput("The source has no text.", field="file")
    return text


def chunk(source_type: str, text: str) -> list[Chunk]:
    """Chunks of extracted text, by the shape of its source."""
    if source_type == "csv":
        return qa_from_csv(text)
    if source_type in ("markdown", "html", "funnel_page"):
        return chunk_markdown(text)
    return chunk_plain(text)
