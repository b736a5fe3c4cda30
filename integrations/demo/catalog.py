"""The demo retailer: a chain of professional beauty stores (hair, brows, nails, face) like seed 000's.

Stores in Russian shopping centres, their staff, the assortment with prices, and the mailing
calendar. Everything is built from the seed, so the same seed gives the same shop. Staff are
named by store and number, never by person: ClickHouse holds no personal names (152-FZ).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from integrations.demo.timeline import Timeline

ONLINE_STORE = "Интернет-магазин"
OFFLINE, ONLINE = 0, 1
CHANNELS = ("offline", "online")

# (city, shopping centre), in the order the chain opened them: the capitals first.
STORE_LOCATIONS = (
    ("Москва", "ТЦ Авиапарк"),
    ("Санкт-Петербург", "ТРЦ Галерея"),
    ("Москва", "ТЦ Европейский"),
    ("Екатеринбург", "ТРЦ Гринвич"),
    ("Москва", "ТРЦ Мега Тёплый Стан"),
    ("Казань", "ТРЦ Кольцо"),
    ("Новосибирск", "ТРЦ Аура"),
    ("Санкт-Петербург", "ТРЦ Охта Молл"),
    ("Москва", "ТЦ Метрополис"),
    ("Нижний Новгород", "ТРЦ Фантастика"),
    ("Краснодар", "ТРЦ Красная Площадь"),
    ("Самара", "ТРК Космопорт"),
    ("Ростов-на-Дону", "ТРЦ Горизонт"),
    ("Москва", "ТРЦ Атриум"),
    ("Уфа", "ТРК Планета"),
    ("Санкт-Петербург", "ТРК Гранд Каньон"),
    ("Воронеж", "ТРЦ Галерея Воронеж"),
    ("Пермь", "ТРК Планета Пермь"),
    ("Екатеринбург", "ТРЦ Мега Екатеринбург"),
    ("Челябинск", "ТРК Родник"),
    ("Москва", "ТЦ Ривьера"),
    ("Красноярск", "ТРЦ Планета Красноярск"),
    ("Омск", "ТК Мега Омск"),
    ("Казань", "ТРК Мега Казань"),
    ("Тюмень", "ТРЦ Галерея Вояж"),
    ("Москва", "ТЦ Колумбус"),
    ("Санкт-Петербург", "ТРЦ Мега Дыбенко"),
    ("Новосибирск", "ТЦ Сибирский Молл"),
    ("Нижний Новгород", "ТРЦ Небо"),
    ("Самара", "ТРЦ Гудок"),
    ("Ростов-на-Дону", "ТРК Мега Ростов"),
    ("Москва", "ТРЦ Вегас Кунцево"),
    ("Краснодар", "ОЦ Галерея Краснодар"),
    ("Екатеринбург", "ТРЦ Пассаж"),
    ("Уфа", "ТЦ Мега Уфа"),
    ("Казань", "ТЦ Южный"),
)
MIN_STORES = 4
CUSTOMERS_PER_STORE = 60_000  # a store serves about this many cardholders over the history
EMPLOYEES_PER_STORE = (3, 9)  # inclusive range

# Category → brands, and product types as (name, base price in roubles, variants as (label, price factor)).
ASSORTMENT = (
    (
        "Уход за волосами",
        ("Estel Professional", "Kapous", "Ollin Professional", "Concept", "Matrix", "Davines", "Lebel"),
        (
            ("Шампунь для окрашенных волос", 690, (("250 мл", 1.0), ("1000 мл", 2.6))),
            ("Шампунь для объёма", 650, (("250 мл", 1.0), ("1000 мл", 2.6))),
            ("Кондиционер увлажняющий", 720, (("200 мл", 1.0), ("1000 мл", 3.0))),
            ("Маска восстанавливающая", 980, (("250 мл", 1.0), ("500 мл", 1.7))),
            ("Несмываемый спрей-уход", 850, (("200 мл", 1.0),)),
            ("Масло для кончиков волос", 1100, (("100 мл", 1.0),)),
            ("Сыворотка для кожи головы", 1450, (("50 мл", 1.0),)),
        ),
    ),
    (
        "Окрашивание",
        ("Estel Professional", "Kapous", "Ollin Professional", "Matrix", "Wella Professionals", "Concept"),
        (
            ("Крем-краска", 390, (("5/0", 1.0), ("6/1", 1.0), ("7/0", 1.0), ("7/1", 1.0), ("8/0", 1.0), ("10/0", 1.0))),
            ("Оксидант 6%", 210, (("60 мл", 1.0), ("1000 мл", 3.2))),
            ("Оксидант 9%", 210, (("60 мл", 1.0), ("1000 мл", 3.2))),
            ("Осветляющая пудра", 890, (("30 г", 1.0), ("500 г", 4.5))),
            ("Тонирующий бальзам", 480, (("жемчужный", 1.0), ("пепельный", 1.0), ("медный", 1.0))),
        ),
    ),
    (
        "Стайлинг",
        ("Estel Professional", "Kapous", "Ollin Professional", "Concept", "Davines"),
        (
            ("Лак сильной фиксации", 590, (("300 мл", 1.0), ("500 мл", 1.4))),
            ("Мусс для объёма", 620, (("250 мл", 1.0),)),
            ("Воск для укладки", 740, (("50 мл", 1.0),)),
            ("Термозащитный спрей", 780, (("200 мл", 1.0),)),
            ("Гель для укладки", 520, (("150 мл", 1.0),)),
        ),
    ),
    (
        "Брови и ресницы",
        ("Bronsun", "Thuya", "Innovator Cosmetics", "Lucas' Cosmetics", "Levissime", "BrowXenna"),
        (
            ("Краска для бровей и ресниц", 420, (("графит", 1.0), ("тёмно-коричневый", 1.0), ("чёрный", 1.0))),
            ("Хна для бровей", 890, (("светло-коричневый", 1.0), ("тёмно-коричневый", 1.0))),
            ("Состав для ламинирования", 1650, (("набор", 1.0),)),
            ("Клей для наращивания ресниц", 1200, (("5 мл", 1.0),)),
            ("Ресницы для наращивания", 950, (("C 0.10", 1.0), ("D 0.07", 1.0))),
            ("Ремувер для ресниц", 540, (("15 мл", 1.0),)),
        ),
    ),
    (
        "Уход за лицом",
        ("Holy Land", "Christina", "Aravia Professional", "Levrana", "Librederm", "Natura Siberica"),
        (
            ("Крем для лица увлажняющий", 1290, (("50 мл", 1.0),)),
            ("Сыворотка с гиалуроновой кислотой", 1590, (("30 мл", 1.0),)),
            ("Тоник для лица", 790, (("200 мл", 1.0),)),
            ("Маска для лица", 990, (("100 мл", 1.0),)),
            ("Патчи для глаз", 890, (("60 шт.", 1.0),)),
            ("Пенка для умывания", 690, (("150 мл", 1.0),)),
            ("Крем солнцезащитный SPF 50", 1350, (("50 мл", 1.0),)),
        ),
    ),
    (
        "Макияж",
        ("Vivienne Sabo", "Influence Beauty", "Luxvisage", "Relouis", "Stellary"),
        (
            ("Тушь для ресниц", 450, (("чёрная", 1.0), ("коричневая", 1.0))),
            ("Помада матовая", 420, (("01", 1.0), ("05", 1.0), ("12", 1.0))),
            ("Тональный крем", 590, (("светлый", 1.0), ("бежевый", 1.0))),
            ("Карандаш для бровей", 290, (("серо-коричневый", 1.0), ("тёмно-коричневый", 1.0))),
            ("Палетка теней", 790, (("Nude", 1.0), ("Smoky", 1.0))),
        ),
    ),
    (
        "Уход за телом",
        ("Levrana", "Natura Siberica", "Aravia Professional", "Organic Shop"),
        (
            ("Гель для душа", 390, (("250 мл", 1.0), ("500 мл", 1.7))),
            ("Скраб для тела", 650, (("200 мл", 1.0),)),
            ("Крем для рук", 290, (("75 мл", 1.0),)),
            ("Молочко для тела", 590, (("250 мл", 1.0),)),
        ),
    ),
    (
        "Ногти",
        ("Runail", "TNL Professional", "Kodi Professional", "Patrisa Nail"),
        (
            ("Гель-лак", 390, (("№012", 1.0), ("№045", 1.0), ("№101", 1.0), ("№137", 1.0))),
            ("База для гель-лака", 590, (("10 мл", 1.0),)),
            ("Топ без липкого слоя", 590, (("10 мл", 1.0),)),
            ("Масло для кутикулы", 250, (("15 мл", 1.0),)),
        ),
    ),
    (
        "Парфюмерия",
        ("Brocard", "Новая Заря", "Zielinski & Rozen", "Parfums Genty"),
        (
            ("Туалетная вода", 1490, (("50 мл", 1.0), ("100 мл", 1.7))),
            ("Парфюмерная вода", 2790, (("50 мл", 1.0), ("100 мл", 1.7))),
            ("Парфюмированный спрей для тела", 890, (("150 мл", 1.0),)),
        ),
    ),
    (
        "Инструменты",
        ("Dewal", "Harizma", "Babyliss Pro"),
        (
            ("Расчёска массажная", 690, (("", 1.0),)),
            ("Брашинг для укладки", 890, (("32 мм", 1.0), ("44 мм", 1.15))),
            ("Фен профессиональный", 6490, (("2200 Вт", 1.0),)),
            ("Плойка", 3990, (("25 мм", 1.0),)),
            ("Ножницы парикмахерские", 3290, (('5.5"', 1.0),)),
        ),
    ),
)
# Premium brands cost more than the base price.
BRAND_PRICE_FACTORS = {"Davines": 2.3, "Lebel": 2.0, "Matrix": 1.4, "Wella Professionals": 1.3, "Christina": 1.8}
# Share of lines in each category for a shopper without a known profile (same order as ASSORTMENT).
CATEGORY_WEIGHTS = (0.26, 0.14, 0.08, 0.10, 0.12, 0.10, 0.07, 0.07, 0.04, 0.02)

# --- Mailings ------------------------------------------------------------------------------------
EMAIL, SMS = 0, 1
MESSAGE_CHANNELS = ("email", "sms")
NEWSLETTER, PROMO, WINBACK = 0, 1, 2
NEWSLETTER_SHARE = 0.06  # each issue goes to a rotating slice of the subscribers
PROMO_SHARE = 0.12
# Offers (seasonal and win-back) hold out this share of their audience as a control group: selected, not sent.
OFFER_HOLDOUT_SHARE = 0.1
# Seasonal offers: (campaign id, promo code stem, month, day, discount %, channel).
SEASONAL_PROMOS = (
    ("valentines-day", "LOVE", 2, 7, 10, EMAIL),
    ("march-8", "MARCH", 3, 1, 15, EMAIL),
    ("spring-sale", "SPRING", 4, 10, 10, EMAIL),
    ("summer-sale", "SUMMER", 7, 1, 20, EMAIL),
    ("back-to-autumn", "AUTUMN", 9, 5, 5, EMAIL),
    ("flash-sale", "FLASH", 10, 15, 15, SMS),
    ("new-year", "NEWYEAR", 12, 10, 20, EMAIL),
)
# Win-back offers escalate by month (seed 004): 10, 15, 20 %.
WINBACK_DEPTHS = (10, 15, 20)
NEWSLETTER_EVERY_DAYS = 14
SEND_SECOND = 11 * 3600  # mailings leave at 11:00 local time


@dataclass(frozen=True)
class Catalog:
    """Stores, staff and assortment as parallel arrays (indexes are what the model samples)."""

    stores: tuple[str, ...]  # offline stores, then ONLINE_STORE last
    store_cities: tuple[str, ...]
    store_weights: np.ndarray  # share of offline traffic per offline store
    employees: tuple[str, ...]  # "" first: online orders have no cashier
    store_first_employee: np.ndarray
    store_employee_count: np.ndarray
    categories: tuple[str, ...]
    brands: tuple[str, ...]
    product_ids: tuple[str, ...]
    product_names: tuple[str, ...]
    product_category: np.ndarray
    product_brand: np.ndarray
    product_price: np.ndarray  # kopecks
    category_first_product: np.ndarray
    # Cumulative popularity of each category's products, shifted by the category number (model._draw).
    product_cumulative: np.ndarray

    @property
    def offline_store_count(self) -> int:
        return len(self.stores) - 1

    @property
    def cities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(city for city, _centre in STORE_LOCATIONS))


@dataclass(frozen=True)
class MailingPlan:
    """Every mailing of the history, in send order."""

    mailing_ids: tuple[str, ...]
    campaign_ids: tuple[str, ...]
    promo_codes: tuple[str, ...]  # "" when the mailing carries no offer
    kind: np.ndarray
    channel: np.ndarray
    depth: np.ndarray  # discount %, 0 for none
    day: np.ndarray  # local day index of the send
    audience_share: np.ndarray
    holdout_share: np.ndarray  # share of the audience held out as the control group (0: none)

    def __len__(self) -> int:
        return len(self.mailing_ids)


def _retail_price(roubles: float) -> int:
    """A shelf price in kopecks: whole roubles ending in 90 (1 290 ₽), or tens below 200 ₽."""
    if roubles < 200:
        return round(roubles / 10) * 10 * 100
    return (round(roubles / 100) * 100 - 10) * 100


def catalog_build(*, seed: int, customers: int) -> Catalog:
    rng = np.random.default_rng([seed, 0xCA7])
    store_count = min(len(STORE_LOCATIONS), max(MIN_STORES, MIN_STORES + customers // CUSTOMERS_PER_STORE))
    locations = STORE_LOCATIONS[:store_count]
    # Flagships (opened first) draw more traffic.
    store_weights = rng.uniform(0.7, 1.3, store_count) / np.sqrt(np.arange(store_count) + 2)
    employee_counts = rng.integers(EMPLOYEES_PER_STORE[0], EMPLOYEES_PER_STORE[1] + 1, store_count)
    employees = [""]
    first_employee = []
    for (_city, centre), count in zip(locations, employee_counts, strict=True):
        first_employee.append(len(employees))
        short = centre.split(" ", 1)[1]
        employees.extend(f"{short} · консультант {number:02d}" for number in range(1, count + 1))

    brands: dict[str, int] = {}
    product_ids, product_names, product_category, product_brand, product_price = [], [], [], [], []
    first_product, cumulative = [], []
    for category_index, (_category, category_brands, types) in enumerate(ASSORTMENT):
        first_product.append(len(product_ids))
        for brand in category_brands:
            brand_index = brands.setdefault(brand, len(brands))
            factor = BRAND_PRICE_FACTORS.get(brand, 1.0) * rng.uniform(0.85, 1.15)
            for type_name, base_price, variants in types:
                for label, variant_factor in variants:
                    product_ids.append(f"A{len(product_ids) + 10001:05d}")
                    product_names.append(f"{brand} {type_name} {label}".strip())
                    product_category.append(category_index)
                    product_brand.append(brand_index)
                    product_price.append(_retail_price(base_price * factor * variant_factor))
        count = len(product_ids) - first_product[-1]
        # Zipf-like popularity over a shuffled order: a few bestsellers per category, a long tail.
        weights = 1.0 / (rng.permutation(count) + 3.0) ** 0.9
        cumulative.append(category_index + np.cumsum(weights) / weights.sum())
    return Catalog(
        stores=(*(f"{city}, {centre}" for city, centre in locations), ONLINE_STORE),
        store_cities=tuple(city for city, _centre in locations),
        store_weights=store_weights / store_weights.sum(),
        employees=tuple(employees),
        store_first_employee=np.array(first_employee, dtype=np.int64),
        store_employee_count=employee_counts.astype(np.int64),
        categories=tuple(category for category, _brands, _types in ASSORTMENT),
        brands=tuple(brands),
        product_ids=tuple(product_ids),
        product_names=tuple(product_names),
        product_category=np.array(product_category, dtype=np.int64),
        product_brand=np.array(product_brand, dtype=np.int64),
        product_price=np.array(product_price, dtype=np.int64),
        category_first_product=np.array(first_product, dtype=np.int64),
        product_cumulative=np.concatenate(cumulative),
    )


def mailing_plan_build(timeline: Timeline) -> MailingPlan:
    """Fortnightly newsletters, seasonal offers with promo codes, and a monthly win-back with escalating offers;
    the offers hold out a control group."""
    sends: list[tuple[int, str, str, str, int, int, int, float]] = []  # day, mailing, campaign, code, kind, …
    for day_index in range(timeline.history_start, timeline.days):
        day = timeline.origin + timedelta(days=day_index)
        stamp = day.strftime("%Y%m%d")
        if day.weekday() == 3 and (day_index // 7) % (NEWSLETTER_EVERY_DAYS // 7) == 0:
            sends.append((day_index, f"newsletter-{stamp}", "newsletter", "", NEWSLETTER, EMAIL, 0, NEWSLETTER_SHARE))
        for campaign, stem, month, month_day, depth, channel in SEASONAL_PROMOS:
            if (day.month, day.day) == (month, month_day):
                code = f"{stem}{depth}-{day.year}"
                sends.append((day_index, f"{campaign}-{stamp}", campaign, code, PROMO, channel, depth, PROMO_SHARE))
        if day.day == 20:
            depth = WINBACK_DEPTHS[(day.year * 12 + day.month) % len(WINBACK_DEPTHS)]
            code = f"COMEBACK{depth}-{day:%Y%m}"
            sends.append((day_index, f"winback-{stamp}", "winback", code, WINBACK, EMAIL, depth, 1.0))
    columns = list(zip(*sends, strict=True)) if sends else [()] * 8
    day, mailing_ids, campaign_ids, codes, kind, channel, depth, share = columns
    return MailingPlan(
        mailing_ids=tuple(mailing_ids),
        campaign_ids=tuple(campaign_ids),
        promo_codes=tuple(codes),
        kind=np.array(kind, dtype=np.int64),
        channel=np.array(channel, dtype=np.int64),
        depth=np.array(depth, dtype=np.int64),
        day=np.array(day, dtype=np.int64),
        audience_share=np.array(share, dtype=np.float64),
        holdout_share=np.where(np.array(kind, dtype=np.int64) == NEWSLETTER, 0.0, OFFER_HOLDOUT_SHARE),
    )
