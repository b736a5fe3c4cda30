"""Incremental import of one MoySklad account into canonical sales lines and customers.

What it reads (reference: /work/shared/reference/moysklad.md):

- small dictionaries in full on every run: employees (seller = document ``owner``), retail
  stores and warehouses (store = retail store, else warehouse), the product attribute that
  holds the brand, and the "Розничный покупатель" placeholder that anonymous receipts use;
- counterparties → ``Customer`` (contacts to Postgres only, through ``customers_write``);
- retail sales, retail returns and customer orders with their positions → ``SalesLine``.
  Products come inline (``expand=positions.assortment``, only ever with ``limit<=100``);
  category = the product's folder path, brand = the brand attribute, both from the parent
  product for a variant. Customer orders are the online channel; a retail sale made on the
  basis of an order (``customerOrder``) is that order being picked up, so it is not counted
  again. Documents in the recycle bin and unposted drafts (``applicable: false``) count for
  nothing, as in MoySklad's own reports.

How it stays exact:

- Times are Moscow time without a zone: converted to UTC. Money is kopecks: divided by 100.
  A line's amount is price × qty × (1 − discount/100) and its discount price × qty ×
  discount/100, each rounded half-up to the kopeck.
- Paging is keyset on (``updated``, ``id``) below an upper bound fixed when the run starts:
  each page asks for ``updated >= <last updated seen>`` and drops the ids it has already had
  at that instant, so documents edited mid-run (they jump past the bound) cannot shift the
  rows still to come, as plain offset paging would.
- The watermark (last ``updated`` written) is saved after each page is in ClickHouse; the
  next run starts ``OVERLAP`` earlier. A crash loses nothing and re-reading is harmless:
  sales lines are keyed by (day, order, line) in a ReplacingMergeTree.
- An edited document can leave lines under old keys (its date moved, a position went), and
  a trashed one must vanish: before writing a page the importer looks up what it wrote
  before for those orders and, after writing, deletes the older versions of orders whose
  keys changed. The first sync, and ``full=True``, skip that look-up (nothing to compare
  with) and instead, once every page is in, delete every row of the entity older than the
  pass — which also clears documents deleted outright, invisible to an incremental run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

from analytics.clickhouse.query import tenant_command, tenant_query
from integrations.ingest import Customer, SalesLine, customers_write, ingest_version, sales_lines_write
from integrations.moysklad.client import MoySkladClient

MOSCOW = ZoneInfo("Europe/Moscow")
EXPAND_LIMIT = 100  # the API ignores ``expand`` above this page size, silently
DICTIONARY_PAGE_SIZE = 1000
OVERLAP = timedelta(minutes=5)
ANONYMOUS_CUSTOMER_NAME = "Розничный покупатель"
BRAND_ATTRIBUTE_NAMES = frozenset({"бренд", "brand", "марка"})
MAX_REPORTED_ERRORS = 200
_KOPECK = Decimal(1)
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class DocumentKind:
    entity: str
    channel: str
    is_return: bool


DOCUMENT_KINDS = (
    DocumentKind("retaildemand", "offline", is_return=False),
    DocumentKind("retailsalesreturn", "offline", is_return=True),
    DocumentKind("customerorder", "online", is_return=False),
)
COUNTERPARTY = "counterparty"


def source_tag(entity: str) -> str:
    """The ``source`` of the rows an entity yields: deletes only ever touch these."""
    return f"moysklad:{entity}"


def parse_moscow(text: str) -> datetime:
    """A MoySklad datetime (``2026-06-01 10:00:00.123``, ms optional) as a naive Moscow time."""
    return datetime.fromisoformat(text.strip())


def moscow_to_utc(text: str) -> datetime:
    return parse_moscow(text).replace(tzinfo=MOSCOW).astimezone(UTC)


def format_moscow(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def moscow_now() -> datetime:
    return datetime.now(MOSCOW).replace(tzinfo=None)


@dataclass
class SyncReport:
    """Counters for the ImportRun: per entity, what was read, written and rejected, and why."""

    read: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)

    def count(self, bucket: dict[str, int], entity: str, n: int) -> None:
        bucket[entity] = bucket.get(entity, 0) + n

    def problem(self, *, row: str, column: str, value: Any, reason: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"row": row, "column": column, "value": str(value)[:200], "reason": reason})

    def summary(self) -> str:
        return "; ".join(
            _("%(entity)s: %(read)d read, %(written)d written")
            % {"entity": entity, "read": self.read.get(entity, 0), "written": self.written.get(entity, 0)}
            + (_(", %(rejected)d rejected") % {"rejected": self.rejected[entity]} if self.rejected.get(entity) else "")
            for entity in self.read
        )


class _DocumentRejectedError(Exception):
    """A document the importer cannot turn into lines; reported with the field at fault."""

    def __init__(self, column: str, value: Any, reason: str):
        super().__init__(reason)
        self.column, self.value, self.reason = column, value, reason


class MoySkladImporter:
    """One sync run. ``watermarks`` is the data source's saved state; ``save_watermarks`` persists it."""

    def __init__(
        self,
        *,
        client: MoySkladClient,
        tenant_id: int,
        watermarks: dict[str, dict[str, Any]],
        save_watermarks: Callable[[dict[str, dict[str, Any]]], None],
        page_size: int = EXPAND_LIMIT,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        self.client = client
        self.tenant_id = tenant_id
        self.watermarks = {entity: dict(state) for entity, state in watermarks.items()}
        self._save_watermarks = save_watermarks
        self.page_size = page_size
        self._progress = progress or (lambda fraction: None)
        self.report = SyncReport()
        self._entities: dict[str, dict[str, Any]] = {}  # id → entity fetched or expanded during this run
        self._products: dict[str, tuple[str, str, str, str]] = {}

    def run(self, *, full: bool = False) -> SyncReport:
        # A bad token fails here, before anything is written.
        self.client.get("context/employee")
        self.upper = moscow_now()
        self._load_dictionaries()
        steps = 1 + len(DOCUMENT_KINDS)
        self._sync_counterparties(full=full, progress=lambda f: self._progress(f / steps))
        for index, kind in enumerate(DOCUMENT_KINDS, start=1):
            self._sync_documents(kind, full=full, progress=lambda f, i=index: self._progress((i + f) / steps))
        self._progress(1.0)
        return self.report

    # --- dictionaries -------------------------------------------------------------------------------

    def _load_dictionaries(self) -> None:
        archived_too = {"filter": "archived=true;archived=false"}  # archived rows still name old receipts
        self.employees = {row["id"]: row.get("name", "") for row in self._all_rows("entity/employee", archived_too)}
        self.retail_stores = {
            row["id"]: row.get("name", "") for row in self._all_rows("entity/retailstore", archived_too)
        }
        self.stores = {row["id"]: row.get("name", "") for row in self._all_rows("entity/store", archived_too)}
        attributes = self._all_rows("entity/product/metadata/attributes", {})
        self.brand_attribute_ids = {
            row["id"] for row in attributes if str(row.get("name", "")).strip().lower() in BRAND_ATTRIBUTE_NAMES
        }
        anonymous = {"filter": f"name={ANONYMOUS_CUSTOMER_NAME};archived=true;archived=false"}
        self.anonymous_customer_ids = {row["id"] for row in self._all_rows("entity/counterparty", anonymous)}

    def _all_rows(self, path: str, params: dict[str, Any], limit: int = DICTIONARY_PAGE_SIZE) -> list[dict[str, Any]]:
        """Every row of a small, slowly changing list, by offset."""
        rows: list[dict[str, Any]] = []
        while True:
            page = self.client.get(path, {**params, "limit": limit, "offset": len(rows)})
            batch = page.get("rows") or []
            rows.extend(batch)
            if not batch or len(rows) >= int(page.get("meta", {}).get("size", 0)):
                return rows

    def _entity(self, reference: dict[str, Any]) -> dict[str, Any]:
        """The entity a reference points to: as given when it came expanded, else fetched once per run."""
        href = reference["meta"]["href"]
        entity_id = href.rstrip("/").rsplit("/", 1)[-1]
        if "id" in reference:
            self._entities.setdefault(entity_id, reference)
        elif entity_id not in self._entities:
            self._entities[entity_id] = self.client.get(href)
        return self._entities[entity_id]

    def _name(self, reference: dict[str, Any] | None, names: dict[str, str]) -> str:
        """The name of an employee or store; one created after the dictionaries were read is fetched."""
        if not reference:
            return ""
        entity_id = reference["meta"]["href"].rstrip("/").rsplit("/", 1)[-1]
        if entity_id not in names:
            names[entity_id] = self._entity(reference).get("name", "")
        return names[entity_id]

    def _product(self, assortment: dict[str, Any]) -> tuple[str, str, str, str]:
        """(id, name, category, brand) of an assortment; a variant takes category and brand from its product."""
        item = self._entity(assortment)
        cached = self._products.get(item["id"])
        if cached is not None:
            return cached
        parent = item
        for link in ("product", "assortment"):  # variant → product; consignment → its product or variant
            if isinstance(parent.get(link), dict):
                parent = self._entity(parent[link])
        brand = ""
        for attribute in parent.get("attributes") or []:
            if attribute.get("id") in self.brand_attribute_ids:
                value = attribute.get("value")
                brand = str(value.get("name", "")) if isinstance(value, dict) else str(value or "")
                break
        info = (item["id"], str(item.get("name", "")), str(parent.get("pathName", "")), brand)
        self._products[item["id"]] = info
        return info

    # --- keyset paging --------------------------------------------------------------------------------

    def _pages(
        self, entity: str, *, lower: datetime | None, filters: list[str], page_size: int, expand: str | None
    ) -> Iterator[tuple[list[dict[str, Any]], datetime, float]]:
        """Rows with ``lower <= updated <= upper`` in (updated, id) order, each once: (rows, cursor, progress)."""
        cursor = lower
        seen_at_cursor: set[str] = set()
        offset = 0
        total = None
        done = 0
        while True:
            terms = [*filters, f"updated<={format_moscow(self.upper)}"]
            if cursor is not None:
                terms.append(f"updated>={format_moscow(cursor)}")
            params: dict[str, Any] = {
                "filter": ";".join(terms),
                "order": "updated,asc;id,asc",
                "limit": page_size,
                "offset": offset,
            }
            if expand and page_size <= EXPAND_LIMIT:
                params["expand"] = expand
            page = self.client.get(f"entity/{entity}", params)
            requested_offset = offset
            rows = page.get("rows") or []
            size = int(page.get("meta", {}).get("size", 0))
            total = size if total is None else total
            if not rows:
                return
            fresh = [row for row in rows if row["id"] not in seen_at_cursor]
            last = parse_moscow(rows[-1]["updated"])
            if last == cursor:  # a whole page stamped with one instant: step over it by offset
                offset += len(rows)
            else:
                cursor, offset, seen_at_cursor = last, 0, set()
            seen_at_cursor |= {row["id"] for row in rows if parse_moscow(row["updated"]) == cursor}
            done += len(fresh)
            yield fresh, cursor, min(1.0, done / total) if total else 1.0
            if requested_offset + len(rows) >= size:  # nothing matches beyond this page
                return

    def _save(self, entity: str, state: dict[str, Any]) -> None:
        self.watermarks[entity] = state
        self._save_watermarks({key: dict(value) for key, value in self.watermarks.items()})

    # --- counterparties -------------------------------------------------------------------------------

    def _sync_counterparties(self, *, full: bool, progress: Callable[[float], None]) -> None:
        state = dict(self.watermarks.get(COUNTERPARTY) or {})
        lower = None if full or "updated" not in state else parse_moscow(state["updated"]) - OVERLAP
        self.report.count(self.report.read, COUNTERPARTY, 0)
        pages = self._pages(
            COUNTERPARTY,
            lower=lower,
            filters=["archived=true", "archived=false"],
            page_size=DICTIONARY_PAGE_SIZE,
            expand=None,
        )
        for rows, cursor, fraction in pages:
            self.report.count(self.report.read, COUNTERPARTY, len(rows))
            customers = [self._customer(row) for row in rows if row["id"] not in self.anonymous_customer_ids]
            written = customers_write(customers, source=source_tag(COUNTERPARTY), tenant_id=self.tenant_id)
            self.report.count(self.report.written, COUNTERPARTY, written)
            self._save(COUNTERPARTY, {"updated": format_moscow(cursor)})
            progress(fraction)

    def _customer(self, row: dict[str, Any]) -> Customer:
        first_name, last_name = _person_name(row)
        birth = row.get("birthDate")
        return Customer(
            customer_id=row["id"],
            created_at=moscow_to_utc(row["created"]) if row.get("created") else None,
            first_name=first_name[:100],
            last_name=last_name[:100],
            gender={"MALE": "m", "FEMALE": "f"}.get(row.get("sex", ""), ""),
            birth_date=parse_moscow(birth).date() if birth else None,
            email=self._email(row),
            phone=normalize_phone(str(row.get("phone", ""))),
            city=str((row.get("actualAddressFull") or {}).get("city", ""))[:100],
        )

    def _email(self, row: dict[str, Any]) -> str:
        email = str(row.get("email", "")).strip().lower()
        if not email:
            return ""
        try:
            validate_email(email)
        except ValidationError:
            self.report.problem(
                row=f"counterparty {row['id']}",
                column="email",
                value=email,
                reason=_("Not an e-mail address; left empty."),
            )
            return ""
        return email

    # --- documents ------------------------------------------------------------------------------------

    def _sync_documents(self, kind: DocumentKind, *, full: bool, progress: Callable[[float], None]) -> None:
        entity = kind.entity
        state = dict(self.watermarks.get(entity) or {})
        # A full pass: the first sync, --full, or one that a crash interrupted (then resumed with look-ups on).
        starts_full_pass = full or "updated" not in state
        if starts_full_pass:
            state = {"full_pass": ingest_version()}
            self._save(entity, state)
        lower = None if starts_full_pass else parse_moscow(state["updated"]) - OVERLAP
        self.report.count(self.report.read, entity, 0)
        pages = self._pages(
            entity,
            lower=lower,
            filters=["isDeleted=true", "isDeleted=false"],  # trashed documents too: their lines must go
            page_size=self.page_size,
            expand="positions.assortment",
        )
        for documents, cursor, fraction in pages:
            self._write_documents(kind, documents, compare_existing=not starts_full_pass)
            self._save(entity, state | {"updated": format_moscow(cursor)})
            state = self.watermarks[entity]
            progress(fraction)
        if "full_pass" in state:
            self._delete_lines_older_than(source_tag(entity), state["full_pass"])
            self._save(entity, {key: value for key, value in state.items() if key != "full_pass"})

    def _delete_lines_older_than(self, source: str, version: int) -> None:
        """Drop the rows a full pass did not rewrite (a DELETE costs a mutation even when it matches nothing)."""
        where = " WHERE tenant_id = {tenant_id:UInt32} AND source = {source:String} AND version < {version:UInt64}"
        params = {"source": source, "version": version}
        if tenant_query("SELECT count() FROM sales_lines" + where, params, tenant_id=self.tenant_id).first_row[0]:
            tenant_command("DELETE FROM sales_lines" + where, params, tenant_id=self.tenant_id)

    def _write_documents(self, kind: DocumentKind, documents: list[dict[str, Any]], *, compare_existing: bool) -> None:
        source = source_tag(kind.entity)
        lines: list[SalesLine] = []
        gone: set[str] = set()  # documents whose lines must not (or no longer) count
        for document in documents:
            self.report.count(self.report.read, kind.entity, 1)
            if _not_a_sale(kind, document):
                gone.add(document["id"])
                continue
            try:
                lines.extend(self._document_lines(kind, document))
            except _DocumentRejectedError as rejected:
                self.report.count(self.report.rejected, kind.entity, 1)
                self.report.problem(
                    row=f"{kind.entity} {document.get('name') or document['id']}",
                    column=rejected.column,
                    value=rejected.value,
                    reason=rejected.reason,
                )
        stale_orders, stale_days = self._stale_rows(source, lines, gone) if compare_existing else (set(), set())
        before_write = ingest_version()
        written = sales_lines_write(lines, source=source, tenant_id=self.tenant_id)
        self.report.count(self.report.written, kind.entity, written)
        if stale_orders:
            # After the write, so a crash in between leaves old lines rather than none. The days narrow the
            # mutation to the parts that hold those rows (the sort key is tenant, day, order).
            tenant_command(
                "DELETE FROM sales_lines WHERE tenant_id = {tenant_id:UInt32} AND toDate(ts) IN {days:Array(Date)}"
                " AND source = {source:String} AND order_id IN {orders:Array(String)} AND version < {before:UInt64}",
                {"source": source, "days": sorted(stale_days), "orders": sorted(stale_orders), "before": before_write},
                tenant_id=self.tenant_id,
            )

    def _stale_rows(self, source: str, lines: list[SalesLine], gone: set[str]) -> tuple[set[str], set[date]]:
        """Orders (and the days of their rows) already stored under keys this write will not overwrite.

        That is a document whose date moved to another day, that lost a position, or that is gone.
        """
        orders = sorted({line.order_id for line in lines} | gone)
        if not orders:
            return set(), set()
        existing = tenant_query(
            "SELECT order_id, toDate(ts), line_no, is_return FROM sales_lines"
            " WHERE tenant_id = {tenant_id:UInt32} AND source = {source:String} AND order_id IN {orders:Array(String)}",
            {"source": source, "orders": orders},
            tenant_id=self.tenant_id,
        ).result_rows
        new_keys = {(line.order_id, line.ts.date(), line.line_no, int(line.is_return)) for line in lines}
        stale = [row for row in existing if tuple(row) not in new_keys]
        return {row[0] for row in stale}, {row[1] for row in stale}

    def _document_lines(self, kind: DocumentKind, document: dict[str, Any]) -> list[SalesLine]:
        try:
            ts = moscow_to_utc(document["moment"])
        except (KeyError, TypeError, ValueError):
            raise _DocumentRejectedError(
                "moment", document.get("moment"), _("Missing or unreadable document date.")
            ) from None
        agent = document.get("agent")
        customer_id = ""
        if agent:
            agent_id = agent["meta"]["href"].rstrip("/").rsplit("/", 1)[-1]
            customer_id = "" if agent_id in self.anonymous_customer_ids else agent_id
        store = self._name(document.get("retailStore"), self.retail_stores) or self._name(
            document.get("store"), self.stores
        )
        employee = self._name(document.get("owner"), self.employees)
        positions = sorted(self._positions(kind, document), key=lambda position: position["id"])
        lines = []
        for line_no, position in enumerate(positions, start=1):
            price = _number(position, "price", line_no)
            quantity = _number(position, "quantity", line_no)
            discount_percent = _number(position, "discount", line_no, default=Decimal(0))
            gross = price * quantity
            product_id, product_name, category, brand = self._product(position["assortment"])
            lines.append(
                SalesLine(
                    order_id=document["id"],
                    line_no=line_no,
                    ts=ts,
                    amount=_roubles(gross * (1 - discount_percent / 100)),
                    customer_id=customer_id,
                    store=store,
                    employee=employee,
                    channel=kind.channel,
                    product_id=product_id,
                    product_name=product_name,
                    category=category,
                    brand=brand,
                    qty=quantity,
                    price=_roubles(price),
                    discount=_roubles(gross * discount_percent / 100),
                    is_return=kind.is_return,
                )
            )
        return lines

    def _positions(self, kind: DocumentKind, document: dict[str, Any]) -> list[dict[str, Any]]:
        """A document's positions: inline when expanded and complete, else read from their own list."""
        positions = document.get("positions") or {}
        inline = positions.get("rows")
        size = int(positions.get("meta", {}).get("size", 0))
        if inline is not None and len(inline) >= size:
            return inline
        href = positions.get("meta", {}).get("href") or f"entity/{kind.entity}/{document['id']}/positions"
        return self._all_rows(href, {"expand": "assortment"}, limit=EXPAND_LIMIT)


def _not_a_sale(kind: DocumentKind, document: dict[str, Any]) -> bool:
    """In the recycle bin, an unposted draft (MoySklad's reports skip those too), or a pickup of a counted order."""
    if "deleted" in document or document.get("applicable") is False:
        return True
    return kind.entity == "retaildemand" and bool(document.get("customerOrder"))


def _number(position: dict[str, Any], name: str, line_no: int, default: Decimal | None = None) -> Decimal:
    value = position.get(name)
    if value is None and default is not None:
        return default
    try:
        if isinstance(value, bool):
            raise TypeError
        number = Decimal(value)
        if not number.is_finite():
            raise InvalidOperation
    except (TypeError, ValueError, InvalidOperation):
        raise _DocumentRejectedError(
            f"positions[{line_no}].{name}", value, _("Position %(name)s is not a number.") % {"name": name}
        ) from None
    if name == "quantity" and number <= 0:
        raise _DocumentRejectedError(f"positions[{line_no}].{name}", value, _("Position quantity must be positive."))
    return number


def _roubles(kopecks: Decimal) -> Decimal:
    """Kopecks (possibly fractional) → roubles, rounded half-up to the kopeck."""
    return (kopecks.quantize(_KOPECK, rounding=ROUND_HALF_UP) / 100).quantize(_CENT)


def _person_name(row: dict[str, Any]) -> tuple[str, str]:
    """(first, last). Structured fields when filled; a person's ``name`` read as "Last First [Patronymic]"."""
    first, last = str(row.get("legalFirstName", "")).strip(), str(row.get("legalLastName", "")).strip()
    if first or last:
        return first, last
    name = str(row.get("name", "")).strip()
    if row.get("companyType", "legal") != "individual":
        return "", name  # a company: no first name to greet it by
    parts = name.split()
    if len(parts) == 1:
        return parts[0], ""
    return (parts[1], parts[0]) if parts else ("", "")


def normalize_phone(raw: str) -> str:
    """Russian numbers in any spelling (``8 916 …``, ``+7 (916) …``, ``916 …``) → ``+79161234567``."""
    digits = re.sub(r"\D", "", raw)
    if not digits:
        return ""
    if len(digits) == 11 and digits[0] in "78":
        return "+7" + digits[1:]
    if len(digits) == 10 and digits[0] == "9":
        return "+7" + digits
    return ("+" + digits if raw.strip().startswith("+") else digits)[:32]
