"""Analysis results in the page's language: every key labelled, coded values by their labels, parameters explained."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from django.utils import translation
from django_tenants.utils import tenant_context

from analytics.analyses.base import analyses, analysis_run
from analytics.analyses.loyalty import PROGRAMME_LABELS
from analytics.analyses.rfm import SEGMENTS as RFM_SEGMENTS
from analytics.dashboards import ANALYSIS_HIDDEN_KEYS
from analytics.labels import CHANNEL_LABELS, VALUE_LABELS, known_field_label
from tenants.accounts.roles import Role

YEAR_2025 = {"from": "2025-01-01", "to": "2025-12-31"}
# Every analysis, with the parameters that reach each branch of its result's shape.
RUNS: list[tuple[str, dict[str, str]]] = [
    ("cohorts", YEAR_2025),
    ("cohorts", {**YEAR_2025, "granularity": "week", "metric": "ltv"}),
    ("rfm", {"as_of": "2025-12-31"}),
    ("clv", {"calibration_end": "2025-12-01", "limit": "20"}),
    ("basket", YEAR_2025),
    ("basket", {**YEAR_2025, "level": "product", "min_orders": "1", "sort": "support"}),
    ("journey", YEAR_2025),
    ("journey", {**YEAR_2025, "level": "channel"}),
    *[
        ("discount_depth", {**YEAR_2025, "segment_by": split})
        for split in ("none", "loyalty_program", "gender", "channel")
    ],
    ("loyalty", YEAR_2025),
    ("peers", YEAR_2025),
]
CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)


def result_keys(value: Any, top: bool = True) -> Iterator[str]:
    """Every key of a result as the page prints it: nested ones too, not those the page shows elsewhere."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if top and key in ANALYSIS_HIDDEN_KEYS:
                continue
            yield key
            yield from result_keys(item, top=False)
    elif isinstance(value, list):
        for item in value:
            yield from result_keys(item, top=False)


def shown_labels(context: Mapping[str, Any]) -> list[str]:
    """What an analysis page prints as labels and explanations: titles, fact names, column headers, the form."""
    labels = [chart["title"] for chart in context["charts"]]
    for section in context["sections"]:
        labels += [section["title"]] if section["title"] else []
        labels += [label for label, _text in section.get("facts", [])]
        labels += section.get("header", [])
    for field in context["fields"]:
        labels += [str(field["label"]), str(field["help"]), *(str(label) for _choice, label in field["choices"])]
    return labels


def column(context: Mapping[str, Any], title: str, header: str) -> list[str]:
    """The texts of one column of the table titled ``title``."""
    table = next(section for section in context["sections"] if section["title"] == title)
    position = table["header"].index(header)
    return [row[position]["text"] for row in table["rows"]]


def russian(text: Any) -> str:
    with translation.override("ru"):
        return str(text)


@pytest.fixture
def analyst_client(make_user, logged_in_client):
    def make(tenant):
        return logged_in_client(tenant, make_user(tenant, Role.ANALYST))

    return make


def test_every_key_of_every_analysis_has_a_label(generated_tenant):
    tenant = generated_tenant(customers=300, seed=7)
    for seed in range(51, 56):  # the peers the peer comparison needs
        generated_tenant(customers=40, seed=seed)
    assert {name for name, _params in RUNS} == set(analyses()), "run every analysis here"
    unlabelled = set()
    with tenant_context(tenant):
        for name, params in RUNS:
            result = analysis_run(name, params, staff=True)
            unlabelled |= {(name, key) for key in result_keys(result) if known_field_label(key, name) is None}
    for name, analysis in analyses().items():
        unlabelled |= {(name, param.name) for param in analysis.params if known_field_label(param.name, name) is None}
        for param in analysis.params:
            assert set(param.choices) <= set(VALUE_LABELS.get(param.name, {})), (name, param.name)
    assert not unlabelled, f"keys that would be shown in English words: {sorted(unlabelled)}"


def test_russian_analysis_pages_show_no_english_and_name_the_codes(generated_tenant, analyst_client):
    tenant = generated_tenant(customers=300, seed=7, locale="ru")
    client = analyst_client(tenant)
    pages = {}
    for name, params in RUNS:
        if analyses()[name].staff_only:
            continue
        response = client.get(f"/analytics/analyses/{name}/", params)
        assert response.status_code == 200 and response.context.get("sections"), (name, params)
        english = {key.replace("_", " ").capitalize() for key in result_keys(analysis_result(tenant, name, params))}
        for label in shown_labels(response.context):
            assert CYRILLIC.search(label) and label not in english, (name, params, label)
        pages.setdefault((name, params.get("level") or params.get("segment_by")), response.context)

    rfm = pages["rfm", None]
    segment_names = {russian(segment.label) for segment in RFM_SEGMENTS}
    assert set(column(rfm, "Сегменты", "Сегмент")) == segment_names
    assert set(column(rfm, "Сетка R×F", "Сегмент")) <= segment_names
    assert "Чемпионы" in segment_names
    loyalty = pages["loyalty", None]
    assert column(loyalty, "Программы", "Программа") == [russian(label) for label in PROGRAMME_LABELS.values()]
    journey = pages["journey", "channel"]
    channels = {russian(label) for label in CHANNEL_LABELS.values()}
    assert set(column(journey, "Шаги", "Шаг")) == channels
    sankey = journey["charts"][0]["chart"]
    assert {node["name"].removeprefix("→ ") for node in sankey["nodes"]} == channels
    depth = pages["discount_depth", "loyalty_program"]
    assert set(column(depth, "Заказы по глубине скидки", "Сегмент")) == set(map(russian, PROGRAMME_LABELS.values()))
    cohorts = pages["cohorts", None]
    facts = dict(next(section for section in cohorts["sections"] if section["kind"] == "facts")["facts"])
    assert (facts["Длина периода"], facts["Метрика"]) == ("Месяц", "Удержание, %")


def analysis_result(tenant, name: str, params: dict[str, str]) -> dict[str, Any]:
    with tenant_context(tenant), translation.override("ru"):
        return analysis_run(name, params)


def test_the_api_lists_the_parameters_in_the_callers_language(make_tenant, make_user, logged_in_client):
    tenant = make_tenant(locale="ru")
    client = logged_in_client(tenant, make_user(tenant, Role.ANALYST))
    listed = {analysis["name"]: analysis for analysis in client.get("/api/v1/analyses/").json()}
    english = {
        analysis["name"]: analysis for analysis in client.get("/api/v1/analyses/", HTTP_ACCEPT_LANGUAGE="en").json()
    }
    tenant_analyses = {name: analysis for name, analysis in analyses().items() if not analysis.staff_only}
    assert set(listed) == set(english) == set(tenant_analyses)
    for name, analysis in tenant_analyses.items():
        for param, shown, shown_in_english in zip(
            analysis.params, listed[name]["params"], english[name]["params"], strict=True
        ):
            assert set(shown) == {"name", "type", "default", "help"} | ({"choices"} if param.choices else set())
            assert shown["name"] == param.name and shown["type"] == param.kind.__name__
            assert shown["help"] == russian(param.help) and CYRILLIC.search(shown["help"]), (name, param.name)
            assert shown_in_english["help"] == str(param.help) and shown_in_english["help"].isascii()
            assert shown == {**shown_in_english, "help": shown["help"]}
        assert CYRILLIC.search(listed[name]["label"]) and CYRILLIC.search(listed[name]["description"])


def test_the_form_shows_each_choice_by_its_label_and_submits_its_code(generated_tenant, analyst_client):
    tenant = generated_tenant(customers=150, seed=9, locale="ru")
    page = analyst_client(tenant).get("/analytics/analyses/cohorts/", YEAR_2025).content.decode()
    assert '<option value="retention" selected>Удержание, %</option>' in page
    assert '<option value="week">Неделя</option>' in page
