"""Customers' personal data (PII): Russian names, e-mails on reserved example domains, mobile numbers.

These columns go to the tenant's Postgres schema only (integrations.ingest.contacts_copy);
ClickHouse never sees them. Built column-wise with Arrow compute, so millions cost seconds.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FEMALE_FIRST_NAMES = (
    "Анна", "Мария", "Елена", "Ольга", "Наталья", "Татьяна", "Екатерина", "Ирина", "Светлана", "Юлия",
    "Анастасия", "Дарья", "Ксения", "Алина", "Виктория", "Полина", "Марина", "Алёна", "Евгения", "Кристина",
    "Валерия", "Софья", "Людмила", "Галина", "Оксана", "Вероника", "Диана", "Яна", "Елизавета", "Арина",
    "Милана", "Карина", "Ангелина", "Маргарита", "Жанна", "Инна", "Лариса", "Нина", "Тамара", "Александра",
)  # fmt: skip
MALE_FIRST_NAMES = (
    "Александр", "Дмитрий", "Сергей", "Андрей", "Алексей", "Максим", "Иван", "Михаил", "Николай", "Артём",
    "Евгений", "Владимир", "Денис", "Павел", "Роман", "Игорь", "Олег", "Кирилл", "Антон", "Никита",
    "Егор", "Илья", "Виктор", "Юрий", "Константин", "Григорий", "Тимур", "Руслан", "Вадим", "Станислав",
)  # fmt: skip
# Masculine forms; the feminine form adds "а" (Иванов → Иванова, Ильин → Ильина) or turns -ский into -ская.
# Surnames in -ко and -ук do not change.
LAST_NAMES = (
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков", "Фёдоров",
    "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов", "Козлов", "Степанов", "Николаев",
    "Орлов", "Андреев", "Макаров", "Никитин", "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев", "Григорьев",
    "Романов", "Воробьёв", "Сергеев", "Кузьмин", "Фролов", "Александров", "Дмитриев", "Королёв", "Гусев", "Киселёв",
    "Ильин", "Максимов", "Поляков", "Сорокин", "Виноградов", "Ковалёв", "Белов", "Медведев", "Антонов", "Тарасов",
    "Жуков", "Баранов", "Филиппов", "Комаров", "Давыдов", "Беляев", "Герасимов", "Богданов", "Осипов", "Сидоров",
    "Матвеев", "Титов", "Марков", "Миронов", "Крылов", "Куликов", "Карпов", "Власов", "Мельников", "Денисов",
    "Гаврилов", "Тихонов", "Казаков", "Афанасьев", "Данилов", "Савельев", "Тимофеев", "Фомин", "Чернов", "Абрамов",
    "Мартынов", "Ефимов", "Федотов", "Щербаков", "Назаров", "Калинин", "Исаев", "Быков", "Маслов", "Коновалов",
    "Вишневский", "Ковалевский", "Шевченко", "Бондаренко", "Ткаченко", "Коваленко", "Ковальчук", "Полищук",
)  # fmt: skip
EMAIL_DOMAINS = ("example.ru", "example.com", "example.org", "example.net")  # reserved for examples (RFC 2606)
EMAIL_DOMAIN_WEIGHTS = (0.45, 0.25, 0.15, 0.15)

_LATIN = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "",
    "э": "e", "ю": "yu", "я": "ya",
}  # fmt: skip


def transliterate(text: str) -> str:
    return "".join(_LATIN.get(char, char) for char in text.lower())


def feminine(last_name: str) -> str:
    if last_name.endswith("ский"):
        return last_name[:-2] + "ая"
    if last_name.endswith(("ко", "ук")):
        return last_name
    return last_name + "а"


def _names(values: tuple[str, ...], index: np.ndarray) -> pa.Array:
    return pc.take(pa.array(values), pa.array(index))


def contacts_columns(
    rng: np.random.Generator, *, female: np.ndarray, has_email: np.ndarray, has_phone: np.ndarray
) -> dict[str, pa.Array]:
    """First and last names by gender, e-mails made of them, mobile numbers; "" where a customer has none."""
    count = len(female)
    first_index = np.where(
        female,
        rng.integers(0, len(FEMALE_FIRST_NAMES), count),
        len(FEMALE_FIRST_NAMES) + rng.integers(0, len(MALE_FIRST_NAMES), count),
    )
    last_index = rng.integers(0, len(LAST_NAMES), count) + np.where(female, len(LAST_NAMES), 0)
    first_names = FEMALE_FIRST_NAMES + MALE_FIRST_NAMES
    last_names = LAST_NAMES + tuple(feminine(name) for name in LAST_NAMES)

    # anna.ivanova, aivanova or anna_ivanova1987-like local parts, with a number a third of the time.
    separator = _names(("", ".", "_"), rng.integers(0, 3, count))
    first_part = pc.if_else(
        pa.array(rng.random(count) < 0.25),
        pc.utf8_slice_codeunits(_names(tuple(map(transliterate, first_names)), first_index), 0, 1),
        _names(tuple(map(transliterate, first_names)), first_index),
    )
    number = np.where(rng.random(count) < 0.35, rng.integers(1, 100, count), rng.integers(1960, 2008, count))
    suffix = pc.if_else(pa.array(rng.random(count) < 0.33), pc.cast(pa.array(number), pa.string()), "")
    domain_index = rng.choice(len(EMAIL_DOMAINS), size=count, p=EMAIL_DOMAIN_WEIGHTS)
    email = pc.binary_join_element_wise(
        first_part,
        separator,
        _names(tuple(map(transliterate, last_names)), last_index),
        suffix,
        "@",
        _names(EMAIL_DOMAINS, domain_index),
        "",
    )
    # Russian mobile numbers: +7 9XX XXX-XX-XX, stored in E.164.
    phone = pc.binary_join_element_wise(
        "+79", pc.utf8_lpad(pc.cast(pa.array(rng.integers(0, 10**9, count)), pa.string()), 9, "0"), ""
    )
    return {
        "first_name": _names(first_names, first_index),
        "last_name": _names(last_names, last_index),
        "email": pc.if_else(pa.array(has_email), email, ""),
        "phone": pc.if_else(pa.array(has_phone), phone, ""),
    }
