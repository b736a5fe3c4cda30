"""The data behind the fake MoySklad server: a deterministic retail account and the API's query semantics.

Pure Python, no Django: the fake runs in tests and as a stand-alone demo process. Rows are
kept with Python values (``datetime`` in Moscow time without a zone, money in kopecks,
discounts in percent, references as ``Ref``) and rendered to the API's JSON shape on
request, with hrefs under whatever base URL the request came in on. See
``/work/shared/reference/moysklad.md`` §7 for the contract this emulates.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

DOCUMENT_TYPES = ("retaildemand", "retailsalesreturn", "customerorder")
POSITION_TYPES = {
    "retaildemand": "demandposition",
    "retailsalesreturn": "salesreturnposition",
    "customerorder": "customerorderposition",
}
DICTIONARY_TYPES = ("counterparty", "product", "variant", "productfolder", "store", "retailstore", "employee")
ENTITY_TYPES = (*DOCUMENT_TYPES, *DICTIONARY_TYPES)
ANONYMOUS_CUSTOMER_NAME = "Розничный покупатель"
BRAND_ATTRIBUTE_NAME = "Бренд"

_DATETIME_FIELDS = frozenset({"updated", "moment", "created", "deleted"})
_REFERENCE_FIELDS = frozenset({"agent", "store", "retailStore", "owner", "demand", "customerOrder", "productFolder"})
_SORTABLE_FIELDS = frozenset({"id", "updated", "moment", "created", "name"})
_FILTER_TERM = re.compile(r"^([A-Za-z.]+)(>=|<=|!=|>|<|=)(.*)$", re.DOTALL)
_MSK_OFFSET = timedelta(hours=3)  # Moscow has kept UTC+3 without DST since 2014


class ApiError(Exception):
    """A request the real API would reject: becomes ``{"errors": [...]}`` with this status and code."""

    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to another entity; ``path`` overrides the href for non-entity targets."""

    type: str
    id: str
    path: str | None = None


def format_moment(value: datetime) -> str:
    """The API's datetime format: Moscow time, milliseconds, no zone."""
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"


def parse_moment(text: str) -> datetime:
    """Parse a filter datetime the way the API accepts it: with or without seconds and milliseconds."""
    for pattern in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text.strip(), pattern)
        except ValueError:
            continue
    raise ApiError(400, 1035, f"Неверный формат даты: '{text}'")


def line_amount_kopecks(price: float | int, quantity: float | int, discount: float | int) -> Decimal:
    """What MoySklad charges for a position, rounded to the kopeck: price × qty × (1 − discount/100)."""
    gross = Decimal(str(price)) * Decimal(str(quantity))
    return (gross * (1 - Decimal(str(discount)) / 100)).quantize(Decimal(1), rounding=ROUND_HALF_UP)


# --- Vocabulary of the generated account --------------------------------------------------------------

_FOLDERS = (("Одежда", None), ("Футболки", "Одежда"), ("Джинсы", "Одежда"), ("Обувь", None), ("Кроссовки", "Обувь"))
_FOLDERS += (("Аксессуары", None), ("Кофе и чай", None))
_BRANDS = ("Nike", "Adidas", "Levi's", "Puma", "Zolla", "Gloria Jeans")
# (folder, name, price in roubles, weighed, branded)
_CATALOGUE = (
    ("Футболки", "Футболка базовая", 990, False, True),
    ("Футболки", "Футболка оверсайз", 1490, False, True),
    ("Джинсы", "Джинсы slim", 3990, False, True),
    ("Джинсы", "Джинсы straight", 4490, False, True),
    ("Кроссовки", "Кроссовки беговые", 7990, False, True),
    ("Кроссовки", "Кеды", 4990, False, True),
    ("Аксессуары", "Рюкзак", 2990, False, True),
    ("Аксессуары", "Кепка", 1290, False, True),
    ("Кофе и чай", "Кофе в зёрнах, развес", 2400, True, False),
    ("Кофе и чай", "Чай улун, развес", 3600, True, False),
)
_FIRST_NAMES = {
    "MALE": ("Александр", "Дмитрий", "Максим", "Сергей", "Андрей", "Алексей", "Иван", "Михаил"),
    "FEMALE": ("Анна", "Мария", "Елена", "Ольга", "Наталья", "Татьяна", "Екатерина", "Ирина"),
}
_LATIN = {"Александр": "alexander", "Дмитрий": "dmitry", "Максим": "maxim", "Сергей": "sergey", "Андрей": "andrey"}
_LATIN |= {"Алексей": "alexey", "Иван": "ivan", "Михаил": "mikhail", "Анна": "anna", "Мария": "maria"}
_LATIN |= {"Елена": "elena", "Ольга": "olga", "Наталья": "natalia", "Татьяна": "tatiana", "Екатерина": "ekaterina"}
_LATIN |= {"Ирина": "irina"}
_LAST_NAMES = ("Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков")
_CITIES = ("Москва", "Санкт-Петербург", "Казань", "Екатеринбург")
_DISCOUNTS = (0, 0, 0, 0, 3, 5, 5, 10, 10, 15, 7.5, -5)
_PERIOD_START = datetime(2026, 5, 1)
_PERIOD_DAYS = 180


class FakeAccount:
    """One MoySklad account: tables of rows, mutation helpers for tests, and list/get semantics."""

    def __init__(self, seed: int = 1) -> None:
        self.seed = seed
        self.lock = threading.RLock()
        self.tables: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in ENTITY_TYPES}
        self.positions: dict[str, list[dict[str, Any]]] = {}
        self.attributes: list[dict[str, Any]] = []
        self._rng = random.Random(seed)
        self._clock = datetime(2000, 1, 1)
        self.account_id = self.new_id()

    # --- generation -------------------------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        seed: int = 1,
        *,
        counterparties: int = 60,
        demands: int = 240,
        orders: int = 30,
        return_share: float = 0.08,
    ) -> FakeAccount:
        """A deterministic retailer: the same seed gives the same ids, names, prices and dates."""
        account = cls(seed)
        account._generate_dictionaries(counterparties)
        account._generate_documents(demands=demands, orders=orders, return_share=return_share)
        return account

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _add(self, kind: str, row: dict[str, Any]) -> dict[str, Any]:
        row.setdefault("id", self.new_id())
        row.setdefault("accountId", self.account_id)
        self.tables[kind][row["id"]] = row
        return row

    def _generate_dictionaries(self, counterparties: int) -> None:
        rng = self._rng
        base_updated = datetime(2026, 4, 1, 10, 0)
        stamp = iter(base_updated + timedelta(minutes=i, milliseconds=rng.randrange(1000)) for i in range(10_000))

        self.employees = [
            self._add(
                "employee",
                {
                    "name": f"{last} {first[0]}.",
                    "firstName": first,
                    "lastName": last,
                    "position": "Продавец-кассир",
                    "archived": archived,
                    "created": next(stamp),
                    "updated": next(stamp),
                },
            )
            for first, last, archived in (
                ("Ирина", "Петрова", False),
                ("Олег", "Сидоров", False),
                ("Мария", "Кузнецова", False),
                ("Павел", "Орлов", False),
                ("Светлана", "Белова", True),  # left the company; her old receipts remain
            )
        ]
        warehouses = [
            self._add("store", {"name": name, "archived": False, "pathName": "", "updated": next(stamp)})
            for name in ("Склад Тверская", "Склад Невский", "Склад Европейский", "Склад интернет-магазина")
        ]
        self.web_warehouse = warehouses[-1]
        self.retail_stores = [
            self._add(
                "retailstore",
                {
                    "name": name,
                    "active": not archived,
                    "archived": archived,
                    "store": Ref("store", warehouse["id"]),
                    "updated": next(stamp),
                },
            )
            for (name, archived), warehouse in zip(
                (("Магазин на Тверской", False), ("Магазин на Невском", False), ("ТЦ Европейский", True)),
                warehouses,
                strict=False,
            )
        ]

        folders: dict[str, dict[str, Any]] = {}
        for name, parent in _FOLDERS:
            row: dict[str, Any] = {"name": name, "pathName": parent or "", "archived": False, "updated": next(stamp)}
            if parent:
                row["productFolder"] = Ref("productfolder", folders[parent]["id"])
            folders[name] = self._add("productfolder", row)

        brand_dictionary = self.new_id()
        self.brand_attribute_id = self.new_id()
        self.attributes = [
            {
                "id": self.brand_attribute_id,
                "name": BRAND_ATTRIBUTE_NAME,
                "type": "customentity",
                "required": False,
                "customEntityMeta": Ref(
                    "customentitymetadata",
                    brand_dictionary,
                    f"context/companysettings/metadata/customEntities/{brand_dictionary}",
                ),
            },
            {"id": self.new_id(), "name": "Страна производства", "type": "string", "required": False},
        ]
        brand_refs = {brand: Ref("customentity", f"{brand_dictionary}/{self.new_id()}") for brand in _BRANDS}
        country_attribute = self.attributes[1]

        self.sellable: list[dict[str, Any]] = []  # products without variants, and variants
        for folder_name, base_name, roubles, weighed, branded in _CATALOGUE:
            folder = folders[folder_name]
            brands = rng.sample(_BRANDS, 3) if branded else [None]
            for brand in brands:
                attributes = [
                    {
                        "meta": _attribute_ref(country_attribute["id"]),
                        "id": country_attribute["id"],
                        "name": country_attribute["name"],
                        "type": "string",
                        "value": rng.choice(("Китай", "Вьетнам", "Россия", "Турция")),
                    }
                ]
                if brand:
                    attributes.insert(
                        0,
                        {
                            "meta": _attribute_ref(self.brand_attribute_id),
                            "id": self.brand_attribute_id,
                            "name": BRAND_ATTRIBUTE_NAME,
                            "type": "customentity",
                            "value": {"meta": brand_refs[brand], "name": brand},
                        },
                    )
                price = roubles * 100 + rng.choice((0, 0, 0, 50))
                product = self._add(
                    "product",
                    {
                        "name": f"{base_name} {brand}" if brand else base_name,
                        "code": f"{len(self.tables['product']) + 1:05d}",
                        "archived": False,
                        "pathName": f"{folder['pathName']}/{folder['name']}".lstrip("/"),
                        "productFolder": Ref("productfolder", folder["id"]),
                        # Kopecks, sometimes as a float, as the API sends them.
                        "salePrices": [{"value": float(price) if rng.random() < 0.3 else price}],
                        "attributes": attributes,
                        "weighed": weighed,
                        "paymentItemType": "GOOD",
                        "updated": next(stamp),
                    },
                )
                if base_name.startswith("Футболка базовая"):
                    product["variantsCount"] = 3
                    for size in ("S", "M", "L"):
                        self.sellable.append(
                            self._add(
                                "variant",
                                {
                                    "name": f"{product['name']} ({size})",
                                    "product": Ref("product", product["id"]),
                                    "archived": False,
                                    "salePrices": product["salePrices"],
                                    "updated": next(stamp),
                                },
                            )
                        )
                else:
                    product["variantsCount"] = 0
                    self.sellable.append(product)
        # A product outside any folder and without a brand: category and brand stay empty.
        certificate = self._add(
            "product",
            {
                "name": "Подарочный сертификат 3000",
                "archived": False,
                "pathName": "",
                "salePrices": [{"value": 300000}],
                "attributes": [],
                "variantsCount": 0,
                "updated": next(stamp),
            },
        )
        self.sellable.append(certificate)
        # An archived product: no longer on sale, but its past receipts must still resolve.
        next(item for item in self.sellable[5:] if "product" not in item)["archived"] = True

        self.anonymous_customer = self._add(
            "counterparty",
            {
                "name": ANONYMOUS_CUSTOMER_NAME,
                "companyType": "legal",
                "archived": False,
                "created": next(stamp),
                "updated": next(stamp),
            },
        )
        self.customers = [
            self._add("counterparty", self._person(number, next(stamp))) for number in range(counterparties)
        ]
        for name in ("ООО Ромашка", "ИП Белкин А. В."):
            self.customers.append(
                self._add(
                    "counterparty",
                    {
                        "name": name,
                        "companyType": "legal" if name.startswith("ООО") else "entrepreneur",
                        "email": f"zakaz{len(self.customers)}@example.org",
                        "archived": False,
                        "created": next(stamp),
                        "updated": next(stamp),
                    },
                )
            )

    def _person(self, number: int, created: datetime) -> dict[str, Any]:
        rng = self._rng
        sex = rng.choice(("MALE", "FEMALE"))
        first = rng.choice(_FIRST_NAMES[sex])
        last = rng.choice(_LAST_NAMES) + ("а" if sex == "FEMALE" else "")
        row: dict[str, Any] = {
            "name": f"{last} {first}",
            "companyType": "individual",
            "archived": number % 17 == 5,
            "created": created,
            "updated": created + timedelta(seconds=rng.randrange(1, 3600)),
        }
        if number % 3 == 0:  # some accounts fill the structured name, most only "name"
            row |= {"legalFirstName": first, "legalLastName": last}
        if number % 4 != 3:
            row["sex"] = sex
        digits = f"9{rng.randrange(10**9):09d}"
        phone_formats = (
            f"+7 ({digits[:3]}) {digits[3:6]}-{digits[6:8]}-{digits[8:]}",
            f"8{digits}",
            f"+7{digits}",
            f"{digits[:3]} {digits[3:6]} {digits[6:8]} {digits[8:]}",
        )
        if number % 7 != 6:
            row["phone"] = phone_formats[number % 4]
        if number % 5 != 4:
            local = f"{_LATIN[first]}.{number}"
            row["email"] = f"{local.title()}@Example.RU" if number % 6 == 1 else f"{local}@example.ru"
        if number % 3 != 2:
            birth = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 45))
            row["birthDate"] = datetime(birth.year, birth.month, birth.day)
        if number % 2 == 0:
            row["actualAddressFull"] = {"city": rng.choice(_CITIES)}
        row["discountCardNumber"] = f"{1000 + number}"
        return row

    def _generate_documents(self, *, demands: int, orders: int, return_share: float) -> None:
        rng = self._rng
        moments = sorted(self._random_moment() for _ in range(demands + orders))
        order_moments = set(rng.sample(range(len(moments)), orders))
        previous_updated: datetime | None = None
        active_stores = [store for store in self.retail_stores if not store["archived"]]
        for index, moment in enumerate(moments):
            updated = moment + timedelta(seconds=rng.randrange(5, 600), milliseconds=rng.randrange(1000))
            # Bulk operations stamp several documents with the same ``updated``.
            if previous_updated and rng.random() < 0.06 and previous_updated > moment:
                updated = previous_updated
            previous_updated = updated
            positions = self._random_positions(rng.randint(1, 4))
            owner = rng.choice(self.employees)
            if index in order_moments:
                order = self._add_document(
                    "customerorder",
                    {
                        "name": f"{index + 1:05d}",
                        "moment": moment,
                        "created": updated - timedelta(seconds=1),
                        "updated": updated,
                        "agent": Ref("counterparty", rng.choice(self.customers)["id"]),
                        "owner": Ref("employee", owner["id"]),
                        "store": Ref("store", self.web_warehouse["id"]),
                        "applicable": True,
                    },
                    positions,
                )
                if rng.random() < 0.3:  # picked up and paid in a shop: a retail sale based on the order
                    self._add_document(
                        "retaildemand",
                        self._retail_header(
                            moment + timedelta(days=1),
                            updated + timedelta(days=1),
                            order["agent"],
                            rng.choice(active_stores),
                            owner,
                        )
                        | {"customerOrder": Ref("customerorder", order["id"])},
                        [dict(p, id=self.new_id()) for p in positions],
                    )
                continue
            store = rng.choice(self.retail_stores if moment < datetime(2026, 8, 1) else active_stores)
            agent = rng.choice(self.customers) if rng.random() < 0.6 else self.anonymous_customer
            demand = self._add_document(
                "retaildemand",
                self._retail_header(moment, updated, Ref("counterparty", agent["id"]), store, owner),
                positions,
            )
            if rng.random() < return_share:
                self._add_return(demand, moment + timedelta(days=rng.randint(1, 10), minutes=rng.randint(1, 300)))
        demands = list(self.tables["retaildemand"].values())
        # Documents in the recycle bin: listed only with isDeleted=true.
        for demand in demands[3:5]:
            demand["deleted"] = demand["updated"] + timedelta(hours=1)
            demand["updated"] = demand["deleted"]
        # Drafts a cashier never posted: listed, but not sales.
        for demand in demands[7:9]:
            demand["applicable"] = False

    def _random_moment(self) -> datetime:
        rng = self._rng
        day = _PERIOD_START + timedelta(days=rng.randrange(_PERIOD_DAYS))
        # Mostly shop hours; some just after midnight Moscow time, which is the previous day in UTC.
        hour = rng.randint(0, 2) if rng.random() < 0.05 else rng.randint(9, 22)
        return day.replace(hour=hour, minute=rng.randrange(60))  # moment is stored to the minute

    def _random_positions(self, count: int) -> list[dict[str, Any]]:
        rng = self._rng
        positions = []
        for item in rng.sample(self.sellable, count):
            product = self._product_of(item)
            weighed = product.get("weighed", False)
            positions.append(
                {
                    "id": self.new_id(),
                    "quantity": round(rng.uniform(0.1, 1.5), 3) if weighed else rng.choice((1, 1, 1, 2, 3)),
                    "price": item["salePrices"][0]["value"],
                    "discount": rng.choice(_DISCOUNTS),
                    "vat": 20,
                    "vatEnabled": True,
                    "assortment": Ref("variant" if "product" in item else "product", item["id"]),
                }
            )
        return positions

    def _product_of(self, item: dict[str, Any]) -> dict[str, Any]:
        return self.tables["product"][item["product"].id] if "product" in item else item

    def _retail_header(
        self, moment: datetime, updated: datetime, agent: Ref, store: dict[str, Any], owner: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "name": f"{len(self.tables['retaildemand']) + 1:05d}",
            "moment": moment,
            "created": updated - timedelta(seconds=1),
            "updated": updated,
            "agent": agent,
            "owner": Ref("employee", owner["id"]),
            "retailStore": Ref("retailstore", store["id"]),
            "store": store["store"],
            "applicable": True,
        }

    def _add_return(self, demand: dict[str, Any], moment: datetime) -> dict[str, Any] | None:
        rng = self._rng
        # Marked-up positions (negative discount) are not returned: integrations.ingest stores every return
        # discount as negative, which cannot express the return of a markup.
        returnable = [p for p in self.positions[demand["id"]] if p["discount"] >= 0]
        if not returnable:
            return None
        returned = rng.sample(returnable, rng.randint(1, len(returnable)))
        positions = [
            dict(
                position,
                id=self.new_id(),
                quantity=position["quantity"]
                if isinstance(position["quantity"], float)
                else rng.randint(1, position["quantity"]),
            )
            for position in returned
        ]
        updated = moment + timedelta(seconds=rng.randrange(5, 300), milliseconds=rng.randrange(1000))
        header = {key: demand[key] for key in ("agent", "owner", "retailStore", "store", "applicable")} | {
            "name": f"В{len(self.tables['retailsalesreturn']) + 1:05d}",
            "moment": moment,
            "created": updated - timedelta(seconds=1),
            "updated": updated,
            "demand": Ref("retaildemand", demand["id"]),
        }
        return self._add_document("retailsalesreturn", header, positions)

    def _add_document(self, kind: str, header: dict[str, Any], positions: list[dict[str, Any]]) -> dict[str, Any]:
        row = self._add(kind, header)
        self.positions[row["id"]] = positions
        self._refresh_sum(row)
        return row

    def _refresh_sum(self, row: dict[str, Any]) -> None:
        row["sum"] = int(
            sum(line_amount_kopecks(p["price"], p["quantity"], p["discount"]) for p in self.positions[row["id"]])
        )

    # --- mutations for tests ------------------------------------------------------------------------

    def now(self) -> datetime:
        """The fake's clock (Moscow time, ms precision), strictly increasing so edits order deterministically."""
        with self.lock:
            while True:  # never ahead of the wall clock: an importer's upper bound must cover every edit made
                current = datetime.now(UTC).replace(tzinfo=None) + _MSK_OFFSET
                current = current.replace(microsecond=current.microsecond // 1000 * 1000)
                if current > self._clock:
                    self._clock = current
                    return current
                time.sleep(0.001)

    def add_retail_demand(
        self,
        *,
        positions: Iterable[tuple[str, float | int, float | int, float | int]] | None = None,
        agent_id: str | None = None,
        moment: datetime | None = None,
    ) -> dict[str, Any]:
        """A new retail sale; ``positions`` are (product or variant id, quantity, price in kopecks, discount %)."""
        with self.lock:
            updated = self.now()
            if positions is None:
                lines = self._random_positions(2)
            else:
                lines = [
                    {
                        "id": self.new_id(),
                        "quantity": quantity,
                        "price": price,
                        "discount": discount,
                        "vat": 20,
                        "vatEnabled": True,
                        "assortment": Ref("variant" if item in self.tables["variant"] else "product", item),
                    }
                    for item, quantity, price, discount in positions
                ]
            agent = agent_id or self.anonymous_customer["id"]
            header = self._retail_header(
                moment or updated.replace(second=0, microsecond=0),
                updated,
                Ref("counterparty", agent),
                self.retail_stores[0],
                self.employees[0],
            )
            return self._add_document("retaildemand", header, lines)

    def add_counterparty(self, **fields: Any) -> dict[str, Any]:
        with self.lock:
            updated = self.now()
            return self._add(
                "counterparty",
                {"archived": False, "companyType": "individual"} | fields | {"created": updated, "updated": updated},
            )

    def update(self, kind: str, entity_id: str, *, updated: datetime | None = None, **changes: Any) -> dict[str, Any]:
        """Edit a row (``moment``, ``agent``, …); ``updated`` moves to now, or to the value given."""
        with self.lock:
            row = self.tables[kind][entity_id]
            row.update(changes)
            row["updated"] = updated or self.now()
            return row

    def set_positions(self, document_id: str, positions: list[dict[str, Any]]) -> None:
        """Replace a document's positions (a position edit bumps the document's ``updated``, as in MoySklad)."""
        with self.lock:
            kind = next(k for k in DOCUMENT_TYPES if document_id in self.tables[k])
            self.positions[document_id] = positions
            self._refresh_sum(self.tables[kind][document_id])
            self.update(kind, document_id)

    def trash(self, kind: str, entity_id: str) -> None:
        """Move a document to the recycle bin: it keeps its row, gains ``deleted`` and a new ``updated``."""
        with self.lock:
            now = self.now()
            self.update(kind, entity_id, deleted=now, updated=now)

    def hard_delete(self, kind: str, entity_id: str) -> None:
        """Delete for good: the row vanishes from every list (only the audit log would tell)."""
        with self.lock:
            del self.tables[kind][entity_id]
            self.positions.pop(entity_id, None)

    # --- reads as the API serves them ------------------------------------------------------------------

    def live_documents(self, kind: str) -> list[dict[str, Any]]:
        """Documents not in the recycle bin (what an importer should end up with)."""
        with self.lock:
            return [row for row in self.tables[kind].values() if "deleted" not in row]

    def list_rows(self, kind: str, *, filter_text: str, order_text: str) -> list[dict[str, Any]]:
        with self.lock:
            predicate = _compile_filter(kind, filter_text)
            rows = [row for row in self.tables[kind].values() if predicate(row)]
        for field, descending in reversed(_parse_order(order_text)):
            rows.sort(key=lambda row, f=field: (row.get(f) is None, row.get(f) or ""), reverse=descending)
        return rows

    def get_row(self, kind: str, entity_id: str) -> dict[str, Any]:
        with self.lock:
            row = self.tables.get(kind, {}).get(entity_id)
        if row is None:
            raise ApiError(404, 1021, f"Объект с типом '{kind}' и идентификатором '{entity_id}' не найден")
        return row

    def render(self, kind: str, row: dict[str, Any], base: str, expand: dict[str, dict]) -> dict[str, Any]:
        """A row as JSON: references become ``{"meta": …}`` unless ``expand`` names them."""
        out: dict[str, Any] = {"meta": self.meta(Ref(kind, row["id"]), base)}
        for key, value in row.items():
            if key == "weighed":  # a generator hint, not an API field
                continue
            out[key] = self._render_value(value, base, expand.get(key))
        if kind in DOCUMENT_TYPES:
            out["positions"] = self.render_positions_field(kind, row["id"], base, expand.get("positions"))
        return out

    def render_positions_field(self, kind: str, document_id: str, base: str, expand: dict | None) -> dict[str, Any]:
        positions = self.positions.get(document_id, [])
        meta = {
            "href": f"{base}/entity/{kind}/{document_id}/positions",
            "type": POSITION_TYPES[kind],
            "mediaType": "application/json",
            "size": len(positions),
            "limit": 1000,
            "offset": 0,
        }
        if expand is None:
            return {"meta": meta}
        return {"meta": meta, "rows": [self.render_position(kind, document_id, p, base, expand) for p in positions]}

    def render_position(
        self, kind: str, document_id: str, position: dict[str, Any], base: str, expand: dict
    ) -> dict[str, Any]:
        out = {key: self._render_value(value, base, expand.get(key)) for key, value in position.items()}
        out["meta"] = {
            "href": f"{base}/entity/{kind}/{document_id}/positions/{position['id']}",
            "type": POSITION_TYPES[kind],
            "mediaType": "application/json",
        }
        out["accountId"] = self.account_id
        return out

    def _render_value(self, value: Any, base: str, expand: dict | None) -> Any:
        if isinstance(value, Ref):
            target = self.tables.get(value.type, {}).get(value.id)
            if expand is not None and target is not None:
                return self.render(value.type, target, base, expand)
            return {"meta": self.meta(value, base)}
        if isinstance(value, datetime):
            return format_moment(value)
        if isinstance(value, dict):
            return {key: self._render_value(item, base, None) for key, item in value.items()}
        if isinstance(value, list):
            return [self._render_value(item, base, expand) for item in value]
        return value

    def render_attribute(self, attribute: dict[str, Any], base: str) -> dict[str, Any]:
        meta = self.meta(_attribute_ref(attribute["id"]), base)
        return {"meta": meta} | {key: self._render_value(value, base, None) for key, value in attribute.items()}

    @staticmethod
    def meta(ref: Ref, base: str) -> dict[str, str]:
        href = f"{base}/{ref.path}" if ref.path else f"{base}/entity/{ref.type}/{ref.id}"
        return {"href": href, "type": ref.type, "mediaType": "application/json"}


def _attribute_ref(attribute_id: str) -> Ref:
    return Ref("attributemetadata", attribute_id, f"entity/product/metadata/attributes/{attribute_id}")


def parse_expand(text: str) -> dict[str, dict]:
    """``positions.assortment,agent`` → ``{"positions": {"assortment": {}}, "agent": {}}``."""
    tree: dict[str, dict] = {}
    for path in filter(None, (part.strip() for part in text.split(","))):
        node = tree
        steps = path.split(".")
        if len(steps) > 3:
            raise ApiError(400, 1089, f"Превышена максимальная вложенность expand: '{path}'")
        for step in steps:
            node = node.setdefault(step, {})
    return tree


def _parse_order(text: str) -> list[tuple[str, bool]]:
    order = []
    for part in filter(None, text.split(";")):
        field, _, direction = part.partition(",")
        if field not in _SORTABLE_FIELDS or direction not in ("", "asc", "desc"):
            raise ApiError(400, 1063, f"Неверный параметр сортировки: '{part}'")
        order.append((field, direction == "desc"))
    return order


def _compile_filter(kind: str, text: str):
    """The API's filter: ``;``-separated terms, repeated ``=`` on a field ORed, everything else ANDed."""
    equal: dict[str, list[Any]] = {}
    checks = []
    for raw in re.split(r"(?<!\\);", text) if text else []:
        match = _FILTER_TERM.match(raw.replace("\\;", ";"))
        if match is None:
            raise ApiError(400, 1034, f"Неверное значение фильтрации: '{raw}'")
        field, op, value = match.groups()
        typed = _typed_filter_value(field, value)
        if op == "=":
            equal.setdefault(field, []).append(typed)
        else:
            checks.append((field, op, typed))
    if kind in DOCUMENT_TYPES:
        equal.setdefault("isDeleted", [False])
    else:
        equal.setdefault("archived", [False])

    def value_of(row: dict[str, Any], field: str) -> Any:
        if field == "isDeleted":
            return "deleted" in row
        if field == "archived":
            return bool(row.get("archived", False))
        value = row.get(field)
        return value.id if isinstance(value, Ref) else value

    def predicate(row: dict[str, Any]) -> bool:
        for field, allowed in equal.items():
            if value_of(row, field) not in allowed:
                return False
        for field, op, expected in checks:
            actual = value_of(row, field)
            if op == "!=":
                if actual == expected:
                    return False
                continue
            if actual is None:
                return False
            if not {"<": actual < expected, "<=": actual <= expected, ">": actual > expected, ">=": actual >= expected}[
                op
            ]:
                return False
        return True

    return predicate


def _typed_filter_value(field: str, value: str) -> Any:
    if field in _DATETIME_FIELDS:
        return parse_moment(value)
    if field in ("isDeleted", "archived"):
        if value not in ("true", "false"):
            raise ApiError(400, 1034, f"Неверное значение фильтрации '{field}': '{value}'")
        return value == "true"
    if field in _REFERENCE_FIELDS:
        return value.rstrip("/").rsplit("/", 1)[-1]  # a full href; compare by its id
    if field in ("id", "name"):
        return value
    raise ApiError(400, 1034, f"Фильтрация по полю '{field}' не поддерживается")
