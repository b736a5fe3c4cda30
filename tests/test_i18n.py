"""The Russian translation: complete, compiled, and the pages speak the language they should."""

from __future__ import annotations

import ast
import gettext
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from tenants.accounts.models import User
from tenants.accounts.roles import Role

CATALOG_DIR = Path(settings.BASE_DIR) / "locale" / "ru" / "LC_MESSAGES"
PO_PATH = CATALOG_DIR / "django.po"
MO_PATH = CATALOG_DIR / "django.mo"
UPDATE_HINT = "run makemessages and compilemessages as the README's Translations note says"
# What the code fills in or formats: %(name)s, %(share).0f, a literal %%, {name}.
PLACEHOLDER = re.compile(r"%\(\w+\)[-+ #0]*\d*(?:\.\d+)?[sdiufFeEgGxXor]|%%|\{\w*\}")


@dataclass
class PoEntry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)  # plural index → text; 0 alone when not plural
    flags: set[str] = field(default_factory=set)
    line: int = 0

    @property
    def catalog_key(self) -> str:
        """How gettext keys the message: the context, if any, joined by EOT."""
        return self.msgid if self.msgctxt is None else f"{self.msgctxt}\x04{self.msgid}"


KEYWORD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(".*")$')


def po_entries(path: Path) -> list[PoEntry]:
    """The entries of a .po file as makemessages writes it (entries separated by blank lines, no obsolete ones
    counted). Small on purpose: the project needs no .po library for this."""
    entries: list[PoEntry] = []
    line_number = 0
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry, target = PoEntry(line=line_number + 1), None
        for line in block.splitlines():
            line_number += 1
            if line.startswith("#~"):  # obsolete entry
                continue
            if line.startswith("#,"):
                entry.flags.update(flag.strip() for flag in line[2:].split(","))
            elif line.startswith("#") or not line.strip():
                continue
            elif line.startswith('"'):
                target(ast.literal_eval(line))
            else:
                match = KEYWORD.match(line)
                assert match, f"{path}:{line_number}: cannot read {line!r}"
                keyword, index, text = match.groups()
                target = _appender(entry, keyword, int(index or 0))
                target(ast.literal_eval(text))
        line_number += 1  # the blank line between blocks
        if target is not None:
            entries.append(entry)
    return entries


def _appender(entry: PoEntry, keyword: str, index: int):
    """A function that appends a (continued) string to the keyword's field of the entry."""
    if keyword.startswith("msgstr"):
        entry.msgstr[index] = ""
        return lambda text: entry.msgstr.__setitem__(index, entry.msgstr[index] + text)
    setattr(entry, keyword, "")
    return lambda text: setattr(entry, keyword, getattr(entry, keyword) + text)


def header_field(entries: list[PoEntry], name: str) -> str:
    header = next(entry for entry in entries if entry.msgid == "")
    for line in header.msgstr[0].splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    raise AssertionError(f"the .po header has no {name}")


@pytest.fixture(scope="module")
def entries() -> list[PoEntry]:
    return po_entries(PO_PATH)


@pytest.fixture(autouse=True)
def _language_restored():
    """Requests activate a language for the thread and leave it active; later tests must not inherit Russian."""
    yield
    translation.deactivate()


# --- The catalog ---------------------------------------------------------------


def test_every_message_is_translated_and_none_is_fuzzy(entries):
    messages = [entry for entry in entries if entry.msgid]
    assert len(messages) > 100, "the catalog looks truncated"
    fuzzy = [entry.msgid for entry in entries if "fuzzy" in entry.flags]
    untranslated = [entry.msgid for entry in messages if not all(entry.msgstr.values())]
    assert not fuzzy, f"fuzzy entries in {PO_PATH}: {fuzzy}"
    assert not untranslated, f"untranslated entries in {PO_PATH}: {untranslated}"


def test_plural_messages_have_the_three_russian_forms(entries):
    assert header_field(entries, "Language") == "ru"
    assert header_field(entries, "Plural-Forms").startswith("nplurals=3;")
    plurals = [entry for entry in entries if entry.msgid_plural is not None]
    assert plurals, "the catalog has no plural messages to check"
    for entry in plurals:
        assert sorted(entry.msgstr) == [0, 1, 2], f"line {entry.line}: {entry.msgid!r}"
        assert len(set(entry.msgstr.values())) == 3, f"line {entry.line}: the three forms must differ"


def test_translations_keep_the_placeholders(entries):
    for entry in entries:
        if not entry.msgid:
            continue
        expected = sorted(set(PLACEHOLDER.findall(entry.msgid + (entry.msgid_plural or ""))))
        for index, text in entry.msgstr.items():
            assert sorted(set(PLACEHOLDER.findall(text))) == expected, f"line {entry.line}, msgstr[{index}]: {text!r}"


def test_the_compiled_catalog_matches_the_po_file(entries):
    with MO_PATH.open("rb") as mo_file:
        translations = gettext.GNUTranslations(mo_file)
    # msgfmt rewrites the header (drops POT-Creation-Date): of it, compare what gettext uses.
    assert translations.info()["plural-forms"] == header_field(entries, "Plural-Forms"), UPDATE_HINT
    compiled = {key: text for key, text in translations._catalog.items() if key != ""}
    expected: dict[str | tuple[str, int], str] = {}
    for entry in entries:
        if not entry.msgid or "fuzzy" in entry.flags or not all(entry.msgstr.values()):
            continue  # the header, and what msgfmt leaves out
        if entry.msgid_plural is None:
            expected[entry.catalog_key] = entry.msgstr[0]
        else:
            expected.update({(entry.catalog_key, index): text for index, text in entry.msgstr.items()})
    stale = sorted(str(key) for key in expected.keys() ^ compiled.keys())
    changed = sorted(str(key) for key in expected.keys() & compiled.keys() if expected[key] != compiled[key])
    assert not stale and not changed, f"{MO_PATH.name} is out of date ({UPDATE_HINT}): {stale + changed}"


def test_russian_plurals_pick_the_right_form():
    # Also proves our 3-form Plural-Forms coexists with Django's own Russian catalog, which declares 4.
    singular = "Too many failed attempts for %(email)s. Try again in %(minutes)d minute."
    plural = "Too many failed attempts for %(email)s. Try again in %(minutes)d minutes."
    endings = {1: "минуту", 21: "минуту", 3: "минуты", 24: "минуты", 5: "минут", 11: "минут", 12: "минут"}
    with translation.override("ru"):
        for minutes, ending in endings.items():
            text = translation.ngettext(singular, plural, minutes) % {"email": "a@b.test", "minutes": minutes}
            assert text.endswith(f"через {minutes} {ending}."), text


# --- Pages -----------------------------------------------------------------------


def test_the_console_login_page_speaks_the_browsers_language(console_client):
    russian = console_client.get("/login/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    english = console_client.get("/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert '<html lang="ru"' in russian and "Консоль агентства" in russian and "Войти" in russian
    assert "Agency console" not in russian
    assert '<html lang="en"' in english and "Agency console" in english and "Log in" in english
    assert "Консоль агентства" not in english


def test_form_help_texts_follow_the_language_of_the_request(console_client):
    """Form fields are built at import time; their texts must still be translated per request."""
    staff = User.objects.create_user(email="staff@agency.test", username="staff@agency.test", is_staff=True)
    console_client.force_login(staff)
    onboard = reverse("tenant_onboard", urlconf="cxplatform.urls_public")

    russian = console_client.get(onboard, HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    english = console_client.get(onboard, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "Адрес рабочего пространства: &lt;идентификатор&gt;.localhost" in russian
    assert "The workspace address: &lt;slug&gt;.localhost" in english


def test_a_russian_workspace_speaks_russian_until_the_person_chooses_english(make_tenant, tenant_client):
    tenant = make_tenant(locale="ru")
    client = tenant_client(tenant)

    # The tenant's locale wins over the browser's.
    russian = client.get("/login/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f"Вход в {tenant.name}" in russian and "Log in to" not in russian

    response = client.post("/i18n/setlang/", {"language": "en", "next": "/login/"})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"

    english = client.get("/login/").content.decode()
    assert f"Log in to {tenant.name}" in english and "Вход в" not in english


def test_an_english_workspace_switches_to_russian_on_request(make_tenant, make_user, logged_in_client):
    tenant = make_tenant(locale="en")
    client = logged_in_client(tenant, make_user(tenant, Role.OWNER))
    assert "Users and invitations" in client.get("/").content.decode()

    client.post("/i18n/setlang/", {"language": "ru", "next": "/"})
    home = client.get("/").content.decode()

    assert "Пользователи и приглашения" in home and "Users and invitations" not in home
    assert "роль: <strong>Владелец</strong>" in home  # a lazily translated model choice


def test_api_errors_follow_the_callers_accept_language(make_tenant):
    from django.test import Client

    tenant = make_tenant(locale="ru")
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    english = client.get("/api/v1/me/", HTTP_ACCEPT_LANGUAGE="en").json()["message"]
    russian = client.get("/api/v1/me/").json()["message"]  # no preference: the workspace's language
    assert english != russian
    assert english.isascii() and not russian.isascii()
