// Analytics charts: every [data-chart] element is drawn with ECharts from the JSON script it names
// (shaped by analytics/dashboards.py). Values arrive as exact strings (money) and become numbers only
// here, to draw. Charts follow the page's theme switch and the window's size.
(() => {
  "use strict";

  const locale = document.documentElement.lang || "en";

  function number(value) {
    return value === null || value === undefined ? null : Number(value);
  }

  function formatter(unit) {
    const digits = unit === "money" ? 2 : unit === "count" ? 0 : 1;
    const format = new Intl.NumberFormat(locale, { maximumFractionDigits: digits });
    const suffix = unit === "percent" ? " %" : "";
    return (value) => (value === null || value === undefined || Number.isNaN(value) ? "—" : format.format(value) + suffix);
  }

  function seriesOption(data) {
    const format = formatter(data.unit);
    return {
      tooltip: { trigger: "axis", valueFormatter: format },
      legend: { type: "scroll", top: 0 },
      grid: { left: 8, right: 16, top: 40, bottom: 8, containLabel: true },
      xAxis: { type: "category", data: data.categories, axisLabel: { hideOverlap: true } },
      yAxis: { type: "value", axisLabel: { formatter: format } },
      series: data.series.map((series) => ({
        name: series.name,
        type: data.type,
        stack: data.stacked ? "total" : undefined,
        data: series.data.map(number),
        lineStyle: series.previous ? { type: "dashed" } : undefined,
        itemStyle: series.previous ? { opacity: 0.45 } : undefined,
        emphasis: { focus: "series" },
      })),
    };
  }

  function heatmapOption(data) {
    const format = formatter(data.unit);
    const cells = data.cells.map((cell) => [cell[0], cell[1], number(cell[2])]);
    const values = cells.map((cell) => cell[2]).filter((value) => value !== null);
    return {
      tooltip: {
        position: "top",
        formatter: (point) => `${data.y[point.value[1]]}, ${data.x[point.value[0]]}: ${format(point.value[2])}`,
      },
      grid: { left: 8, right: 16, top: 8, bottom: 64, containLabel: true },
      xAxis: { type: "category", data: data.x, splitArea: { show: true } },
      yAxis: { type: "category", data: data.y, inverse: true, splitArea: { show: true } },
      visualMap: {
        min: Math.min(0, ...values),
        max: Math.max(1, ...values),
        calculable: true,
        orient: "horizontal",
        left: "center",
        bottom: 0,
        formatter: format,
      },
      series: [{ type: "heatmap", data: cells, emphasis: { itemStyle: { borderColor: "#333", borderWidth: 1 } } }],
    };
  }

  function funnelOption(data) {
    const format = formatter(data.unit);
    const percent = formatter("percent");
    return {
      tooltip: {
        trigger: "item",
        formatter: (point) => `${point.name}: ${format(point.value)} (${percent(number(point.data.share))})`,
      },
      series: [
        {
          type: "funnel",
          sort: "none",
          left: "10%",
          width: "80%",
          minSize: "8%",
          label: { position: "inside", formatter: (point) => `${point.name}: ${format(point.value)}` },
          data: data.steps.map((step) => ({ name: step.name, value: number(step.value), share: step.share })),
        },
      ],
    };
  }

  function sankeyOption(data) {
    const format = formatter(data.unit);
    return {
      tooltip: { trigger: "item", valueFormatter: format },
      series: [
        {
          type: "sankey",
          nodeAlign: "left",
          emphasis: { focus: "adjacency" },
          data: data.nodes,
          links: data.links.map((link) => ({ ...link, value: number(link.value) })),
        },
      ],
    };
  }

  const OPTIONS = { line: seriesOption, bar: seriesOption, heatmap: heatmapOption, funnel: funnelOption, sankey: sankeyOption };

  function isEmpty(data) {
    if (data.series) return data.series.every((series) => series.data.every((value) => value === null));
    if (data.cells) return data.cells.length === 0;
    if (data.steps) return data.steps.every((step) => !number(step.value));
    return !data.links || data.links.length === 0;
  }

  function draw(element) {
    const source = document.getElementById(element.dataset.chart);
    const data = source && JSON.parse(source.textContent);
    if (!data || !OPTIONS[data.type] || !window.echarts) return;
    window.echarts.dispose(element);
    if (isEmpty(data)) {
      element.classList.add("empty");
      element.textContent = element.dataset.empty;
      return;
    }
    const theme = document.documentElement.dataset.theme === "dark" ? "dark" : null;
    const chart = window.echarts.init(element, theme);
    chart.setOption({ backgroundColor: "transparent", ...OPTIONS[data.type](data) });
  }

  function drawAll() {
    document.querySelectorAll("[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", () => {
    drawAll();
    new MutationObserver(drawAll).observe(document.documentElement, { attributeFilter: ["data-theme"] });
    window.addEventListener("resize", () => {
      document.querySelectorAll("[data-chart]").forEach((element) => window.echarts?.getInstanceByDom(element)?.resize());
    });
    document.querySelectorAll("select[data-navigate]").forEach((select) => {
      select.addEventListener("change", () => {
        window.location.href = select.value + window.location.search;
      });
    });
  });
})();
