// The app's one drawing: a scene of layers (lines, markers, cells, bars, boxes, bands, polylines) on two
// axes, drawn as SVG. Python builds the scene (app/drawing.py); this file only draws it, shows each
// item's tip on hover, sends an item's pick to Python on a click, and pans and zooms.
//
// Every text of the scene (tips, tick labels, legend, box labels) is set as textContent, so text that
// users or files wrote is shown as text, never read as markup.

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function html(tag, className, parent) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (parent) parent.appendChild(el);
  return el;
}

const each = (value, i) => (Array.isArray(value) ? value[i] : value);

function symbolPath(symbol, cx, cy, size) {
  const r = size / 2;
  const points = (n, radius, turn, inner) => {
    const out = [];
    const steps = inner ? n * 2 : n;
    for (let k = 0; k < steps; k++) {
      const rad = inner && k % 2 ? inner : radius;
      const a = turn + (k * 2 * Math.PI) / steps;
      out.push(`${(cx + rad * Math.cos(a)).toFixed(1)},${(cy + rad * Math.sin(a)).toFixed(1)}`);
    }
    return "M" + out.join("L") + "Z";
  };
  switch (symbol) {
    case "square":
      return `M${cx - r},${cy - r}h${size}v${size}h${-size}Z`;
    case "diamond":
      return points(4, r * 1.3, -Math.PI / 2);
    case "hexagon":
      return points(6, r * 1.1, 0);
    case "star":
      return points(5, r * 1.4, -Math.PI / 2, r * 0.6);
    default:
      return `M${cx - r},${cy}a${r},${r} 0 1,0 ${size},0a${r},${r} 0 1,0 ${-size},0`;
  }
}

export default function (component) {
  const { data: scene, parentElement, setTriggerValue } = component;
  for (const old of parentElement.querySelectorAll(".ckb-plot")) old.remove();
  const root = html("div", "ckb-plot", parentElement);
  const legend = html("div", "ckb-legend", root);
  const frame = html("div", "ckb-frame", root);
  const tip = html("div", "ckb-tip", root);
  const height = scene.height || 480;
  const [ml, mr, mt, mb] = scene.margin || [50, 10, 10, 40];
  const home = { x: scene.x.range.slice(), y: scene.y.range.slice() };
  let view = { x: home.x.slice(), y: home.y.slice() };
  let width = 0;

  for (const entry of scene.legend || []) {
    const item = html("span", "ckb-legend-item", legend);
    const swatch = svg("svg", { width: 16, height: 12 }, item);
    if (entry.symbol) svg("path", { d: symbolPath(entry.symbol, 8, 6, 9), fill: entry.colour }, swatch);
    else svg("line", { x1: 0, y1: 6, x2: 16, y2: 6, stroke: entry.colour, "stroke-width": 2, "stroke-dasharray": entry.dash ? "3,2" : "none" }, swatch);
    html("span", "", item).textContent = entry.name;
  }
  if (!legend.childElementCount) legend.remove();

  const px = (x) => ml + ((x - view.x[0]) / (view.x[1] - view.x[0])) * (width - ml - mr);
  const py = (y) => {
    const f = (y - view.y[0]) / (view.y[1] - view.y[0]);
    return scene.y.down ? mt + f * (height - mt - mb) : height - mb - f * (height - mt - mb);
  };
  // how many data units one pixel is, for cells and zoom
  const unitX = () => (width - ml - mr) / (view.x[1] - view.x[0]);
  const unitY = () => (height - mt - mb) / Math.abs(view.y[1] - view.y[0]);

  function item(el, layer, i) {
    const tipText = layer.tips ? layer.tips[i] : null;
    const pick = layer.picks ? layer.picks[i] : null;
    if (tipText != null) el.ckbTip = tipText;
    if (pick != null && scene.pickable) {
      el.ckbPick = pick;
      el.classList.add("ckb-pick");
    }
    return el;
  }

  function drawAxes(g) {
    const axes = svg("g", { class: "ckb-axes" }, g);
    const [x0, x1] = [Math.min(...view.x), Math.max(...view.x)];
    const [y0, y1] = [Math.min(...view.y), Math.max(...view.y)];
    for (const [value, label] of scene.x.ticks || []) {
      if (value < x0 || value > x1) continue;
      const x = px(value);
      if (scene.x.grid !== false) svg("line", { x1: x, x2: x, y1: mt, y2: height - mb, class: "ckb-grid" }, axes);
      const angle = scene.x.angle || 0;
      const t = svg("text", { x, y: height - mb + 12, class: "ckb-tick", "text-anchor": angle ? "end" : "middle", transform: angle ? `rotate(${angle} ${x} ${height - mb + 12})` : "" }, axes);
      t.textContent = label;
    }
    for (const [value, label] of scene.y.ticks || []) {
      if (value < y0 || value > y1) continue;
      const y = py(value);
      if (scene.y.grid !== false) svg("line", { x1: ml, x2: width - mr, y1: y, y2: y, class: "ckb-grid" }, axes);
      const t = svg("text", { x: ml - 6, y: y + 4, class: "ckb-tick", "text-anchor": "end" }, axes);
      t.textContent = label;
    }
    if (scene.x.title) svg("text", { x: (ml + width - mr) / 2, y: height - 4, class: "ckb-title", "text-anchor": "middle" }, axes).textContent = scene.x.title;
    if (scene.y.title) {
      const y = (mt + height - mb) / 2;
      svg("text", { x: 12, y, class: "ckb-title", "text-anchor": "middle", transform: `rotate(-90 12 ${y})` }, axes).textContent = scene.y.title;
    }
  }

  const drawLayer = {
    lines(g, layer) {
      const group = svg("g", { stroke: layer.colour, "stroke-width": layer.width, opacity: layer.opacity ?? 1, fill: "none" }, g);
      if (!layer.tips && !layer.picks) {
        const d = layer.segments.map(([a, b, c, e]) => `M${px(a).toFixed(1)},${py(b).toFixed(1)}L${px(c).toFixed(1)},${py(e).toFixed(1)}`).join("");
        if (d) svg("path", { d }, group);
        return;
      }
      layer.segments.forEach(([a, b, c, e], i) => {
        const line = { x1: px(a), y1: py(b), x2: px(c), y2: py(e) };
        svg("line", line, group);
        // a wider invisible line over it, so that a thin link is easy to point at
        item(svg("line", { ...line, class: "ckb-hit ckb-link" }, g), layer, i);
      });
    },
    polyline(g, layer) {
      const d = layer.x.map((x, i) => `${i ? "L" : "M"}${px(x).toFixed(1)},${py(layer.y[i]).toFixed(1)}`).join("");
      svg("path", { d, fill: "none", stroke: layer.colour, "stroke-width": layer.width || 2, "stroke-dasharray": layer.dash ? "5,4" : "none" }, g);
      if (layer.markers) layer.x.forEach((x, i) => item(svg("circle", { cx: px(x), cy: py(layer.y[i]), r: 3.5, fill: layer.colour, class: "ckb-marker" }, g), layer, i));
    },
    band(g, layer) {
      const top = layer.x.map((x, i) => `${px(x).toFixed(1)},${py(layer.high[i]).toFixed(1)}`);
      const bottom = layer.x.map((x, i) => `${px(x).toFixed(1)},${py(layer.low[i]).toFixed(1)}`).reverse();
      if (top.length) item(svg("path", { d: "M" + top.concat(bottom).join("L") + "Z", fill: layer.colour, stroke: "none" }, g), layer, 0);
    },
    markers(g, layer) {
      layer.x.forEach((x, i) => {
        const d = symbolPath(each(layer.symbol, i), px(x), py(layer.y[i]), each(layer.size, i));
        const attrs = { d, fill: each(layer.colour, i), stroke: layer.outline_colour || "#222", "stroke-width": each(layer.outline ?? 0.6, i), class: "ckb-marker" };
        const el = item(svg("path", attrs, g), layer, i);
        if (layer.names) el.setAttribute("data-name", layer.names[i]);
      });
    },
    cells(g, layer) {
      const w = unitX() * (layer.cell || 1) * 0.96;
      const h = unitY() * (layer.cell || 1) * 0.96;
      layer.x.forEach((x, i) => {
        const attrs = { x: px(x) - w / 2, y: py(layer.y[i]) - h / 2, width: w, height: h, fill: layer.colours[i], class: "ckb-cell" };
        item(svg("rect", attrs, g), layer, i);
      });
    },
    bars(g, layer) {
      const half = (unitX() * (layer.width || 0.8)) / 2;
      layer.x.forEach((x, i) => {
        const [top, bottom] = [py(layer.high[i]), py(layer.low[i])];
        const attrs = { x: px(x) - half, y: Math.min(top, bottom), width: 2 * half, height: Math.abs(bottom - top), fill: layer.colour, class: "ckb-bar" };
        item(svg("rect", attrs, g), layer, i);
      });
    },
    boxes(g, layer) {
      const placed = [];
      layer.boxes.forEach(([a, b, c, e], i) => {
        const [x0, x1, y0, y1] = [px(a), px(c), py(b), py(e)];
        svg("rect", { x: Math.min(x0, x1), y: Math.min(y0, y1), width: Math.abs(x1 - x0), height: Math.abs(y1 - y0), fill: "none", stroke: layer.colour, "stroke-width": 1.5, "stroke-dasharray": "3,3", class: "ckb-box" }, g);
        if (layer.labels) {
          const t = svg("text", { x: (x0 + x1) / 2, y: Math.min(y0, y1) - 3, fill: layer.colour, class: "ckb-box-label", "text-anchor": "middle" }, g);
          t.textContent = layer.labels[i];
          placeLabel(t, placed);
        }
      });
    },
  };

  // a box's label inside the plot's width, and moved up past the labels placed before it (boxes of
  // supernodes in one column would otherwise write their names over each other)
  function placeLabel(t, placed) {
    const move = (attr, by) => t.setAttribute(attr, Number(t.getAttribute(attr)) + by);
    let box = t.getBBox();
    if (box.x < ml) move("x", ml - box.x);
    else if (box.x + box.width > width - mr) move("x", width - mr - box.x - box.width);
    box = t.getBBox();
    const clash = (p) => box.x < p.x + p.width && p.x < box.x + box.width && box.y < p.y + p.height && p.y < box.y + box.height;
    for (let tries = 0; tries < 12 && placed.some(clash); tries++) {
      move("y", -box.height);
      box = t.getBBox();
    }
    if (box.y < mt) move("y", mt - box.y);
    placed.push(t.getBBox());
  }

  function drawColourbar(g) {
    const bar = scene.colourbar;
    if (!bar) return;
    const id = `ckb-grad-${Math.random().toString(36).slice(2)}`;
    const gradient = svg("linearGradient", { id, x1: 0, y1: 1, x2: 0, y2: 0 }, svg("defs", {}, g));
    for (const [at, colour] of bar.stops) svg("stop", { offset: at, "stop-color": colour }, gradient);
    const x = width - mr + 12;
    svg("rect", { x, y: mt, width: 12, height: height - mt - mb, fill: `url(#${id})` }, g);
    for (const [value, y] of [[bar.high, mt + 4], [bar.low, height - mb]]) svg("text", { x: x + 16, y, class: "ckb-tick" }, g).textContent = String(value);
  }

  // a wheel or a drag fires many events per frame: draw once per frame
  let pending = false;
  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  }

  let drawn;
  function draw() {
    width = frame.clientWidth || scene.width || 600;
    if (drawn) drawn.remove();
    drawn = svg("svg", { width, height, class: "ckb-svg" }, frame);
    const clip = `ckb-clip-${Math.random().toString(36).slice(2)}`;
    svg("rect", { x: ml, y: mt, width: Math.max(0, width - ml - mr), height: Math.max(0, height - mt - mb) }, svg("clipPath", { id: clip }, svg("defs", {}, drawn)));
    drawAxes(drawn);
    const plot = svg("g", { "clip-path": `url(#${clip})`, class: "ckb-layers" }, drawn);
    for (const layer of scene.layers) drawLayer[layer.kind](svg("g", { "data-layer": layer.name || layer.kind }, plot), layer);
    drawColourbar(drawn);
  }

  // hover: the tip of the item under the pointer; click: its pick
  frame.addEventListener("pointermove", (event) => {
    const text = event.target.ckbTip;
    if (text == null || dragging) {
      tip.style.display = "none";
      return;
    }
    tip.replaceChildren();
    for (const line of String(text).split("\n")) html("div", "", tip).textContent = line;
    const box = root.getBoundingClientRect();
    tip.style.display = "block";
    const left = Math.min(event.clientX - box.left + 14, box.width - tip.offsetWidth - 4);
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${event.clientY - box.top + 14}px`;
  });
  frame.addEventListener("pointerleave", () => (tip.style.display = "none"));
  frame.addEventListener("click", (event) => {
    if (moved) return;
    const pick = event.target.ckbPick;
    if (pick != null) setTriggerValue("pick", pick);
  });

  // pan by dragging, zoom with the wheel, back home with a double click
  let dragging = null;
  let moved = false;
  if (scene.zoom) {
    frame.addEventListener("pointerdown", (event) => {
      dragging = { x: event.clientX, y: event.clientY, view: { x: view.x.slice(), y: view.y.slice() } };
      moved = false;
    });
    frame.addEventListener("pointerup", () => (dragging = null));
    frame.addEventListener("pointerleave", () => (dragging = null));
    frame.addEventListener("pointermove", (event) => {
      if (!dragging) return;
      const dx = (event.clientX - dragging.x) / unitX();
      const dy = (event.clientY - dragging.y) / unitY();
      if (!moved && Math.abs(event.clientX - dragging.x) + Math.abs(event.clientY - dragging.y) < 4) return;
      moved = true;
      const sy = scene.y.down ? -1 : 1;
      view = { x: dragging.view.x.map((v) => v - dx), y: dragging.view.y.map((v) => v + sy * dy) };
      redraw();
    });
    frame.addEventListener("wheel", (event) => {
      event.preventDefault();
      const box = frame.getBoundingClientRect();
      const fx = (event.clientX - box.left - ml) / (width - ml - mr);
      const fy = (event.clientY - box.top - mt) / (height - mt - mb);
      const scale = Math.exp(event.deltaY * 0.0015);
      const at = (range, f) => range[0] + f * (range[1] - range[0]);
      const zoom = (range, f) => {
        const centre = at(range, f);
        return range.map((v) => centre + (v - centre) * scale);
      };
      view = { x: zoom(view.x, fx), y: zoom(view.y, scene.y.down ? fy : 1 - fy) };
      redraw();
    }, { passive: false });
    frame.addEventListener("dblclick", () => {
      view = { x: home.x.slice(), y: home.y.slice() };
      redraw();
    });
  }

  draw();
  const resized = new ResizeObserver(() => {
    if (frame.clientWidth && frame.clientWidth !== width) redraw();
  });
  resized.observe(frame);
  return () => {
    resized.disconnect();
    root.remove();
  };
}
