"""The canonical columns of the sales and customers files (DESIGN §8), and mapping other headers onto them.

A mapping is ``{source header: canonical column}``; an empty target means "ignore this column".
Headers are compared by ``header_key`` (case, surrounding spaces, repeated spaces and ё/е do not
matter). A header that is not in the mapping keeps its own name if that is a canonical column and
is ignored otherwise; two headers that end up on one canonical column are an error, never a
silent choice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from django.utils.translation import gettext as _


class Dataset(StrEnum):
    SALES = "sales"
    CUSTOMERS = "customers"


SALES_COLUMNS = (
    "order_id",
    "ts",
    "customer_id",
    "store",
    "employee",
    "channel",
    "product_id",
    "product_name",
    "category",
    "brand",
    "qty",
    "price",
    "discount",
    "amount",
    "is_return",
    "promo_code",
)
CUSTOMER_COLUMNS = (
    "customer_id",
    "created_at",
    "first_name",
    "last_name",
    "gender",
    "birth_date",
    "email",
    "phone",
    "city",
    "store",
    "consent_email",
    "consent_sms",
)
COLUMNS: dict[Dataset, tuple[str, ...]] = {Dataset.SALES: SALES_COLUMNS, Dataset.CUSTOMERS: CUSTOMER_COLUMNS}

# Headers seen in 1C, POS and CRM exports, for the mapping form's suggestions (compared by header_key).
_SALES_SYNONYMS = {
    "order_id": ("номер чека", "№ чека", "чек", "id чека", "номер документа", "документ", "номер заказа", "заказ",
                 "receipt", "receipt_id", "order", "order id", "check_id"),
    "ts": ("дата", "дата и время", "дата чека", "дата продажи", "время", "период", "date", "datetime", "timestamp"),
    "customer_id": ("клиент", "код клиента", "id клиента", "покупатель", "код покупателя", "номер карты", "карта",
                    "карта клиента", "дисконтная карта", "карта лояльности", "customer", "client", "client_id", "card"),
    "store": ("магазин", "торговая точка", "точка продаж", "склад", "подразделение", "shop", "store name"),
    "employee": ("сотрудник", "продавец", "кассир", "менеджер", "seller", "cashier", "manager"),
    "channel": ("канал", "канал продаж", "sales channel"),
    "product_id": ("код товара", "артикул", "код номенклатуры", "код", "sku", "article"),
    "product_name": ("товар", "наименование", "наименование товара", "номенклатура", "product", "name"),
    "category": ("категория", "группа", "группа товаров", "вид номенклатуры", "group"),
    "brand": ("бренд", "марка", "производитель", "торговая марка"),
    "qty": ("количество", "кол-во", "кол во", "quantity"),
    "price": ("цена", "цена за единицу", "unit price"),
    "discount": ("скидка", "сумма скидки", "discount amount"),
    "amount": ("сумма", "сумма со скидкой", "итого", "стоимость", "total", "sum"),
    "is_return": ("возврат", "признак возврата", "return", "refund"),
    "promo_code": ("промокод", "промо-код", "купон", "coupon", "promo"),
}  # fmt: skip
_CUSTOMER_SYNONYMS = {
    "customer_id": ("клиент", "код клиента", "id клиента", "номер карты", "карта", "карта лояльности", "customer",
                    "client", "client_id", "card"),
    "created_at": ("дата регистрации", "дата создания", "зарегистрирован", "registered", "created", "signup date"),
    "first_name": ("имя", "first name", "firstname"),
    "last_name": ("фамилия", "last name", "lastname", "surname"),
    "gender": ("пол", "sex"),
    "birth_date": ("дата рождения", "день рождения", "birthday", "birthdate", "date of birth", "dob"),
    "email": ("e-mail", "почта", "электронная почта", "эл. почта", "mail"),
    "phone": ("телефон", "мобильный телефон", "мобильный", "номер телефона", "phone number", "mobile", "tel"),
    "city": ("город", "town"),
    "store": ("магазин", "магазин регистрации", "home store"),
    "consent_email": ("согласие на email", "согласие на e-mail", "подписка email", "подписка на email",
                      "email consent", "email subscription"),
    "consent_sms": ("согласие на sms", "согласие на смс", "подписка sms", "подписка на смс", "sms consent",
                    "sms subscription"),
}  # fmt: skip


def header_key(header: str) -> str:
    """How headers are compared: case, spaces and ё/е do not matter."""
    return re.sub(r"\s+", " ", header.replace("\ufeff", "")).strip().casefold().replace("ё", "е")


_SYNONYMS: dict[Dataset, dict[str, str]] = {
    dataset: {header_key(alias): column for column, aliases in synonyms.items() for alias in aliases}
    for dataset, synonyms in ((Dataset.SALES, _SALES_SYNONYMS), (Dataset.CUSTOMERS, _CUSTOMER_SYNONYMS))
}


def mapping_suggest(headers: Sequence[str], dataset: Dataset) -> dict[str, str]:
    """A suggested mapping for the form: exact canonical names first, then known synonyms, each column once."""
    canonical = set(COLUMNS[dataset])
    taken = {header_key(h) for h in headers if header_key(h) in canonical}
    suggested: dict[str, str] = {}
    for header in headers:
        key = header_key(header)
        target = key if key in canonical else _SYNONYMS[dataset].get(key, "")
        if target and (target == key or target not in taken):
            suggested[header] = target
            taken.add(target)
    return suggested


@dataclass(frozen=True)
class HeaderProblem:
    """A problem with the header row or the mapping: nothing can be imported until it is fixed."""

    column: str
    value: str
    reason: str


@dataclass(frozen=True)
class ResolvedColumns:
    """Which file column (0-based position) feeds each canonical column, or the problems that prevent it."""

    positions: dict[str, int] = field(default_factory=dict)
    problems: list[HeaderProblem] = field(default_factory=list)


def _required_problem(dataset: Dataset, present: set[str]) -> str | None:
    if dataset is Dataset.SALES:
        missing = [c for c in ("order_id", "ts") if c not in present]
        if "amount" not in present and not {"qty", "price"} <= present:
            missing.append(_("amount (or qty and price)"))
    else:
        missing = [] if "customer_id" in present else ["customer_id"]
    return ", ".join(missing) or None


def header_targets(headers: Sequence[str], dataset: Dataset, mapping: Mapping[str, str]) -> list[str]:
    """The canonical column each header fills under ``mapping`` ("" = ignored), position by position."""
    canonical = COLUMNS[dataset]
    by_key = {header_key(src): dst for src, dst in mapping.items()}
    targets = [by_key.get(key, key if key in canonical else "") for key in map(header_key, headers)]
    return [target if target in canonical else "" for target in targets]


def columns_resolve(headers: Sequence[str], dataset: Dataset, mapping: Mapping[str, str]) -> ResolvedColumns:
    """Apply ``mapping`` to the file's header row; report unknown targets, duplicates and missing columns."""
    canonical = COLUMNS[dataset]
    problems = [
        HeaderProblem(
            column=src,
            value=dst,
            reason=_("“%(target)s” is not a column of the %(dataset)s file; use one of: %(columns)s")
            % {"target": dst, "dataset": dataset.value, "columns": ", ".join(canonical)},
        )
        for src, dst in mapping.items()
        if dst and dst not in canonical
    ]
    sources: dict[str, list[int]] = {}
    for position, target in enumerate(header_targets(headers, dataset, mapping)):
        if target:
            sources.setdefault(target, []).append(position)
    for target, positions in sources.items():
        if len(positions) > 1:
            problems.append(
                HeaderProblem(
                    column=target,
                    value=", ".join(f"“{headers[p]}”" for p in positions),
                    reason=_("%(count)d columns would fill “%(target)s” (columns %(positions)s): keep one")
                    % {
                        "count": len(positions),
                        "target": target,
                        "positions": ", ".join(str(p + 1) for p in positions),
                    },
                )
            )
    missing = _required_problem(dataset, set(sources))
    if missing:
        problems.append(
            HeaderProblem(
                column=missing,
                value="",
                reason=_("required column missing: %(missing)s. The file's columns: %(headers)s")
                % {"missing": missing, "headers": ", ".join(f"“{h}”" for h in headers)},
            )
        )
    if problems:
        return ResolvedColumns(problems=problems)
    return ResolvedColumns(positions={target: positions[0] for target, positions in sources.items()})
