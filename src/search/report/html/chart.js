// pets study report, part 1: a small SVG chart renderer (linear and log scales, round ticks,
// axes with a grid, marker shapes), written for this page. Every mark is an SVG element, so a
// browser test can count and hover them.
const Chart = (function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";

  /** An SVG element with attributes, appended to `parent` when given. */
  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  /** 1234567 as "1,234,567", the same in every locale. */
  function group(n) {
    return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  /** A tick value of the parameter axis: 500, 2k, 1.5M. */
  function compact(v) {
    const trim = (x) => String(+x.toPrecision(3));
    if (v >= 1e6) return trim(v / 1e6) + "M";
    if (v >= 1e3) return trim(v / 1e3) + "k";
    return trim(v);
  }

  /** Maps [d0, d1] onto [r0, r1]; `log` on log10 of the value (both ends positive). */
  function scale(d0, d1, r0, r1, log) {
    const t = log ? Math.log10 : (v) => v;
    const a = t(d0);
    const span = t(d1) - a || 1;
    const f = (v) => r0 + ((t(v) - a) / span) * (r1 - r0);
    f.domain = [d0, d1];
    f.range = [r0, r1];
    f.log = !!log;
    return f;
  }

  /** About `count` round values (1, 2 or 5 times a power of ten apart) within [d0, d1]. */
  function linearTicks(d0, d1, count) {
    const raw = (d1 - d0) / Math.max(1, count);
    if (!(raw > 0)) return [d0];
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / power;
    const step = (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * power;
    const out = [];
    for (let v = Math.ceil(d0 / step) * step; v <= d1 + step * 1e-9; v += step) {
      out.push(+v.toPrecision(12));
    }
    return out;
  }

  /** Powers of ten within [d0, d1], with 2 and 5 times them when the span is under 4 decades. */
  function logTicks(d0, d1) {
    const lo = Math.floor(Math.log10(d0));
    const hi = Math.ceil(Math.log10(d1));
    const steps = hi - lo < 4 ? [1, 2, 5] : [1];
    const out = [];
    for (let e = lo; e <= hi; e++) {
      for (const m of steps) {
        const v = m * Math.pow(10, e);
        if (v >= d0 && v <= d1) out.push(v);
      }
    }
    return out;
  }

  /**
   * Grid, ticks, tick labels and axis titles of a plot whose scales are `x` and `y`.
   * `opts`: xTitle, yTitle, xFormat, yFormat, xTicks, yTicks (values; computed when absent).
   */
  function axes(root, x, y, opts) {
    const [left, right] = x.range;
    const [bottom, top] = y.range;
    const g = el("g", { class: "axis" }, root);
    const xTicks = opts.xTicks || (x.log ? logTicks(...x.domain) : linearTicks(...x.domain, 8));
    const yTicks = opts.yTicks || linearTicks(...y.domain, 6);
    for (const v of xTicks) {
      const px = x(v);
      el("line", { class: "grid", x1: px, x2: px, y1: top, y2: bottom }, g);
      el("line", { x1: px, x2: px, y1: bottom, y2: bottom + 5 }, g);
      el("text", { x: px, y: bottom + 18, "text-anchor": "middle" }, g).textContent = opts.xFormat(v);
    }
    for (const v of yTicks) {
      const py = y(v);
      el("line", { class: "grid", x1: left, x2: right, y1: py, y2: py }, g);
      el("line", { x1: left - 5, x2: left, y1: py, y2: py }, g);
      const label = el("text", { x: left - 8, y: py + 4, "text-anchor": "end" }, g);
      label.textContent = opts.yFormat(v);
    }
    el("path", { d: `M${left},${top}V${bottom}H${right}`, fill: "none" }, g);
    const xt = el("text", { class: "axis-title", x: (left + right) / 2, y: bottom + 40, "text-anchor": "middle" }, g);
    xt.textContent = opts.xTitle;
    const ym = (top + bottom) / 2;
    const yt = el("text", { class: "axis-title", x: 0, y: 0, "text-anchor": "middle", transform: `translate(${left - 52},${ym}) rotate(-90)` }, g);
    yt.textContent = opts.yTitle;
    return g;
  }

  /** Path data of a marker of radius `r` centred on (cx, cy). */
  function marker(shape, cx, cy, r) {
    const f = (v) => +v.toFixed(2);
    switch (shape) {
      case "triangle":
        return `M${f(cx)},${f(cy - r)}L${f(cx + r * 0.87)},${f(cy + r / 2)}L${f(cx - r * 0.87)},${f(cy + r / 2)}Z`;
      case "square":
        return `M${f(cx - r)},${f(cy - r)}h${f(2 * r)}v${f(2 * r)}h${f(-2 * r)}Z`;
      default:
        return `M${f(cx - r)},${f(cy)}a${f(r)},${f(r)} 0 1,0 ${f(2 * r)},0a${f(r)},${f(r)} 0 1,0 ${f(-2 * r)},0Z`;
    }
  }

  /** Path data of a step line through `points` ([x, y] pairs, x ascending), to `xEnd` at the last y. */
  function steps(points, xEnd) {
    if (points.length === 0) return "";
    let d = `M${points[0][0]},${points[0][1]}`;
    for (let i = 1; i < points.length; i++) d += `H${points[i][0]}V${points[i][1]}`;
    if (xEnd !== undefined) d += `H${xEnd}`;
    return d;
  }

  return { el, clear, group, compact, scale, linearTicks, logTicks, axes, marker, steps };
})();
