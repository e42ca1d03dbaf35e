"""CSV that a spreadsheet opens as data, never as formulas (OWASP "CSV injection").

Patient ids, labels and file names are stored exactly as given, including ones that begin with
``=``, ``+``, ``-`` or ``@``. Excel and LibreOffice would run such a cell as a formula (it can
fetch a URL or start a program), so every CSV export writes its cells through ``csv_cell``,
which prefixes a single quote: spreadsheets show the text as typed and run nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

from django.http import StreamingHttpResponse

# OWASP's list: the four formula leads, and tab and carriage return that some spreadsheets skip
# before reading a formula.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """The cell's text, with a leading quote when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_LEADS) else text


def csv_cell_value(text: str) -> str:
    """The value behind a cell of a CSV we exported: drops the quote ``csv_cell`` added, if any.

    So an exported list, edited and sent back (the manifest upload), stores what it showed.
    """
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_LEADS) else text


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """Lines of a CSV file (header first), every cell made safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([csv_cell(c) for c in header])
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([csv_cell(c) for c in row])
        yield buffer.getvalue()


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    return "".join(csv_lines(header, rows))


def csv_response(
    *, filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]
) -> StreamingHttpResponse:
    """A streamed CSV download; the byte-order mark makes Excel read UTF-8 names correctly."""
    lines = csv_lines(header, rows)
    response = StreamingHttpResponse(
        (line.encode() for line in _with_bom(lines)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _with_bom(lines: Iterator[str]) -> Iterator[str]:
    yield "\ufeff"
    yield from lines
