"""The programme directory: schema, loader with line-numbered errors, lookups.

- ``schema``: :class:`Directory`, :class:`Programme` and the rest of the file's shape;
- ``hours``: :class:`OfficeHours` (open time, holidays, the urgent window's clock);
- ``fields``: texts per language and the strict model base;
- ``loading``: :func:`load_directory` / :func:`parse_directory`, errors with file and line.
"""

from config.directory.fields import Locale, LocalText, Texts, mentions
from config.directory.hours import OfficeHours
from config.directory.loading import DirectoryError, load_directory, parse_directory
from config.directory.schema import (
    ContactInfo,
    Directory,
    Discretion,
    Mediation,
    Operator,
    Programme,
    StaffMember,
)

__all__ = [
    "ContactInfo",
    "Directory",
    "DirectoryError",
    "Discretion",
    "LocalText",
    "Locale",
    "Mediation",
    "OfficeHours",
    "Operator",
    "Programme",
    "StaffMember",
    "Texts",
    "load_directory",
    "mentions",
    "parse_directory",
]
