//! A layered (Sugiyama-style) layout of a graph model, for the SVG renderer.
//!
//! Per machine: cycles broken by a depth-first search from Start (back edges are laid out
//! reversed), longest-path layering with End alone at the bottom, ranks doubled so that every
//! edge crosses at least one row of its own (where its label sits, a box like any node's),
//! one dummy item per rank an edge crosses, barycentre ordering sweeps keeping the order with
//! the fewest crossings, then x positions: each row placed as near as it can be to the
//! barycentre of its neighbours in the next row under the ordering's spacing (an isotonic
//! regression, solved exactly by pool-adjacent-violators), sweeping down and up. A Parallel
//! or Map state is a box: its branches (or processor), each laid out the same way, side by
//! side under a header. Everything is in absolute coordinates once `layout` returns.

use super::model::{Kind, Machine, Node, END, START};
use std::collections::HashMap;

/// Font sizes the renderer uses; widths are estimated from them (no font metrics here).
pub const NAME_PX: f64 = 13.0;
pub const SMALL_PX: f64 = 11.0;
/// Longest state name drawn, in characters (the full name is in the node's `<title>`).
pub const NAME_CHARS: usize = 40;

pub const LINE_NAME: f64 = 17.0;
pub const LINE_SMALL: f64 = 14.0;
pub const PAD_Y: f64 = 9.0;
pub const PAD_X: f64 = 14.0;
const HEADER: f64 = 40.0;
const CLUSTER_PAD: f64 = 12.0;
const CLUSTER_GAP: f64 = 16.0;
const ROW_GAP: f64 = 14.0;
const SEP_NODES: f64 = 28.0;
const SEP_DUMMY: f64 = 12.0;
const LABEL_H: f64 = 16.0;
/// A labelled edge runs down the left side of its label's box, this far in.
pub const LABEL_LINE: f64 = 5.0;
const LABEL_TEXT: f64 = 11.0;

#[derive(Clone, Debug)]
pub struct Laid {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// Parallel to the machine's nodes.
    pub nodes: Vec<Placed>,
    /// Parallel to the machine's edges.
    pub edges: Vec<Route>,
}

#[derive(Clone, Debug)]
pub struct Placed {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// A Parallel's branches or a Map's processor, parallel to the node's machines.
    pub children: Vec<Laid>,
}

#[derive(Clone, Debug, Default)]
pub struct Route {
    /// From the source to the target, in SVG path terms.
    pub path: Vec<Seg>,
    /// Where the label's text starts (its baseline), if the edge has one.
    pub label: Option<(f64, f64)>,
}

pub type Point = (f64, f64);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Seg {
    Move(Point),
    Line(Point),
    /// Two control points, then the end point.
    Cubic(Point, Point, Point),
}

/// A vertical S-curve from `a` to `b`.
fn s_curve(a: Point, b: Point) -> Seg {
    let my = (a.1 + b.1) / 2.0;
    Seg::Cubic((a.0, my), (b.0, my), b)
}

/// A curve leaving `a` horizontally and reaching `b` vertically (or the reverse, `arrive`).
fn corner(a: Point, b: Point, arrive: bool) -> Seg {
    if arrive {
        Seg::Cubic((a.0, b.1), (a.0, b.1), b)
    } else {
        Seg::Cubic((b.0, a.1), (b.0, a.1), b)
    }
}

/// Estimated width of `text` at `px`, for a common sans-serif font.
pub fn text_width(text: &str, px: f64) -> f64 {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '|' | '!' | '\'' | ' ' | 'I' | 't' | 'f'
            | 'r' | '(' | ')' | '[' | ']' => 0.33,
            'm' | 'w' | 'M' | 'W' | '@' | '%' => 0.9,
            'A'..='Z' => 0.7,
            '0'..='9' => 0.58,
            c if c.is_ascii() => 0.56,
            // CJK and other wide characters.
            c if (c as u32) >= 0x1100 => 1.0,
            _ => 0.62,
        })
        .sum::<f64>()
        * px
}

/// The type line drawn under a state's name: `Task · lambda:invoke`.
pub fn type_line(node: &Node) -> String {
    match &node.detail {
        Some(d) => format!("{} · {d}", node.kind.name()),
        None => node.kind.name().to_string(),
    }
}

pub fn display_name(node: &Node) -> String {
    super::model::shorten(&node.name, NAME_CHARS)
}

/// Lays out a whole graph; the top-level machine's box starts at (0, 0).
pub fn layout(machine: &Machine) -> Laid {
    lay_machine(machine, true)
}

/// The header of a Parallel or Map box: name, type line, one line per Retry rule.
pub fn header_height(node: &Node) -> f64 {
    HEADER + LINE_SMALL * node.retry.len() as f64
}

fn leaf_size(node: &Node, top: bool) -> (f64, f64) {
    let name = text_width(&display_name(node), NAME_PX) * 1.05;
    match node.kind {
        Kind::Start | Kind::End if top => (62.0, 28.0),
        Kind::Start | Kind::End => (16.0, 16.0),
        Kind::Choice => {
            let text = name.max(text_width(&type_line(node), SMALL_PX));
            (text * 1.5 + 40.0, 60.0)
        }
        _ => {
            let mut w = name.max(text_width(&type_line(node), SMALL_PX));
            for r in &node.retry {
                w = w.max(text_width(r, SMALL_PX));
            }
            // Wait and Fail have pointed or cut corners.
            let corners = if matches!(node.kind, Kind::Wait | Kind::Fail) {
                12.0
            } else {
                0.0
            };
            let lines = 1 + node.retry.len();
            (
                (w + 2.0 * PAD_X + corners).max(110.0),
                2.0 * PAD_Y + LINE_NAME + LINE_SMALL * lines as f64,
            )
        }
    }
}

/// Per item: its neighbours in the next (or previous) row, with a weight and the offset
/// from a neighbour's x it would like to be at.
type Links = Vec<Vec<(usize, f64, f64)>>;

/// An item of the layered graph: a node, or a point an edge passes through.
struct Item {
    rank: usize,
    w: f64,
    h: f64,
    node: Option<usize>,
    /// A label's item: the edge runs down its left side.
    labelled: bool,
    /// A point of a back edge: kept right of everything else in its row.
    back: bool,
    x: f64,
    y: f64,
}

fn lay_machine(machine: &Machine, top: bool) -> Laid {
    let n = machine.nodes.len();
    // Sizes, laying out nested machines first.
    let mut placed: Vec<Placed> = machine
        .nodes
        .iter()
        .map(|node| {
            if node.machines.is_empty() {
                let (w, h) = leaf_size(node, top);
                return Placed {
                    x: 0.0,
                    y: 0.0,
                    w,
                    h,
                    children: Vec::new(),
                };
            }
            let mut children: Vec<Laid> = node
                .machines
                .iter()
                .map(|m| lay_machine(m, false))
                .collect();
            let header_h = header_height(node);
            let mut x = CLUSTER_PAD;
            let mut h: f64 = 0.0;
            for child in &mut children {
                translate(child, x, header_h);
                x += child.w + CLUSTER_GAP;
                h = h.max(child.h);
            }
            let inner = x - CLUSTER_GAP + CLUSTER_PAD;
            let header = node
                .retry
                .iter()
                .map(|r| text_width(r, SMALL_PX))
                .fold(text_width(&display_name(node), NAME_PX), f64::max)
                .max(text_width(&type_line(node), SMALL_PX))
                + 2.0 * PAD_X;
            let w = inner.max(header);
            // Centre the branches under a wider header.
            let shift = (w - inner) / 2.0;
            for child in &mut children {
                translate(child, shift, 0.0);
            }
            Placed {
                x: 0.0,
                y: 0.0,
                w,
                h: header_h + h + CLUSTER_PAD,
                children,
            }
        })
        .collect();

    // Cycles: depth-first from Start in edge order; an edge to a node on the stack is a
    // back edge, laid out reversed.
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, e) in machine.edges.iter().enumerate() {
        if e.from != e.to {
            out[e.from].push(i);
        }
    }
    let mut back = vec![false; machine.edges.len()];
    let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
    let mut roots = vec![START];
    roots.extend((0..n).filter(|&v| v != START));
    for root in roots {
        if state[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        state[root] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&e) = out[v].get(*next) {
                *next += 1;
                let to = machine.edges[e].to;
                match state[to] {
                    0 => {
                        state[to] = 1;
                        stack.push((to, 0));
                    }
                    1 => back[e] = true,
                    _ => {}
                }
            } else {
                state[v] = 2;
                stack.pop();
            }
        }
    }
    // Forward view of every edge (self-loops aside).
    let dag: Vec<(usize, usize, usize)> = machine
        .edges
        .iter()
        .enumerate()
        .filter(|(_, e)| e.from != e.to)
        .map(|(i, e)| {
            if back[i] {
                (e.to, e.from, i)
            } else {
                (e.from, e.to, i)
            }
        })
        .collect();

    // Longest-path layering (Kahn's order over the DAG).
    let mut indeg = vec![0usize; n];
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(u, v, _) in &dag {
        indeg[v] += 1;
        succ[u].push(v);
    }
    let mut layer = vec![0usize; n];
    let mut queue: Vec<usize> = (0..n).filter(|&v| indeg[v] == 0).collect();
    while let Some(u) = queue.pop() {
        for &v in &succ[u] {
            layer[v] = layer[v].max(layer[u] + 1);
            indeg[v] -= 1;
            if indeg[v] == 0 {
                queue.push(v);
            }
        }
    }
    let deepest = (0..n)
        .filter(|&v| v != END)
        .map(|v| layer[v])
        .max()
        .unwrap_or(0);
    layer[END] = deepest + 1;
    layer[START] = 0;

    // Items: nodes, then each edge's chain of points, one per rank it crosses.
    let mut items: Vec<Item> = (0..n)
        .map(|v| Item {
            rank: 2 * layer[v],
            w: placed[v].w,
            h: placed[v].h,
            node: Some(v),
            labelled: false,
            back: false,
            x: 0.0,
            y: 0.0,
        })
        .collect();
    // Per edge: its chain from the upper end to the lower one, and its label's item.
    let mut chains: Vec<Vec<usize>> = vec![Vec::new(); machine.edges.len()];
    let mut label_item: Vec<Option<usize>> = vec![None; machine.edges.len()];
    for &(u, v, e) in &dag {
        let edge = &machine.edges[e];
        let (from_rank, to_rank) = (items[u].rank, items[v].rank);
        let mut chain = vec![u];
        // The label sits next to the edge's real source.
        let label_rank = if back[e] { to_rank - 1 } else { from_rank + 1 };
        for rank in from_rank + 1..to_rank {
            let labelled = rank == label_rank && edge.label.is_some();
            let w = match (&edge.label, labelled) {
                (Some(text), true) => LABEL_TEXT + text_width(text, SMALL_PX) + 4.0,
                _ => 2.0 * LABEL_LINE,
            };
            if labelled {
                label_item[e] = Some(items.len());
            }
            chain.push(items.len());
            items.push(Item {
                rank,
                w,
                h: if labelled { LABEL_H } else { 0.0 },
                node: None,
                labelled,
                back: back[e],
                x: 0.0,
                y: 0.0,
            });
        }
        chain.push(v);
        chains[e] = chain;
    }
    let ranks = items.iter().map(|it| it.rank).max().unwrap_or(0) + 1;
    let mut down: Links = vec![Vec::new(); items.len()];
    let mut up: Links = vec![Vec::new(); items.len()];
    for (e, chain) in chains.iter().enumerate() {
        for pair in chain.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            // Long edges pull harder between their own points: they stay straight. A back
            // edge runs beside its states, on their right.
            let (weight, offset) = match (items[a].node, items[b].node) {
                (None, None) => (4.0, 0.0),
                (Some(_), None) if back[e] => (0.5, -(items[a].w / 2.0 + 20.0)),
                (None, Some(_)) if back[e] => (0.5, items[b].w / 2.0 + 20.0),
                _ => (1.0, 0.0),
            };
            // `a` wants to be at x(b) + offset, `b` at x(a) − offset.
            down[a].push((b, weight, offset));
            up[b].push((a, weight, -offset));
        }
    }

    // Initial order: depth-first discovery from Start.
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); ranks];
    let mut seen = vec![false; items.len()];
    let mut starts = vec![START];
    starts.extend(0..items.len());
    for s in starts {
        if seen[s] {
            continue;
        }
        let mut stack = vec![s];
        while let Some(i) = stack.pop() {
            if seen[i] {
                continue;
            }
            seen[i] = true;
            rows[items[i].rank].push(i);
            for &(j, _, _) in down[i].iter().rev() {
                if !seen[j] {
                    stack.push(j);
                }
            }
        }
    }
    order_rows(&mut rows, &items, &up, &down);

    // Rows' heights and y.
    let mut y = if top { 20.0 } else { CLUSTER_PAD };
    let mut row_top = vec![0.0; ranks];
    let mut row_h = vec![0.0; ranks];
    for r in 0..ranks {
        let h = rows[r].iter().map(|&i| items[i].h).fold(0.0, f64::max);
        row_top[r] = y;
        row_h[r] = h;
        for &i in &rows[r] {
            // Top-aligned: a short state sits right under what leads to it.
            items[i].y = y;
        }
        y += h + ROW_GAP;
    }
    let height = y - ROW_GAP + if top { 20.0 } else { CLUSTER_PAD };

    place_x(&mut items, &rows, &up, &down);
    let margin = if top { 20.0 } else { CLUSTER_PAD };
    let min_x = items
        .iter()
        .map(|it| it.x - it.w / 2.0)
        .fold(f64::INFINITY, f64::min);
    let max_x = items
        .iter()
        .map(|it| it.x + it.w / 2.0)
        .fold(f64::NEG_INFINITY, f64::max);
    for it in &mut items {
        it.x += margin - min_x;
    }
    let mut width = max_x - min_x + 2.0 * margin;

    for (v, p) in placed.iter_mut().enumerate() {
        let (dx, dy) = (items[v].x - p.w / 2.0, items[v].y);
        p.x = dx;
        p.y = dy;
        for child in &mut p.children {
            translate(child, dx, dy);
        }
    }

    let mut edges: Vec<Route> = vec![Route::default(); machine.edges.len()];
    route(
        machine, &items, &chains, &back, &placed, &row_top, &row_h, &mut edges,
    );
    for (e, item) in label_item.iter().enumerate() {
        if let Some(i) = *item {
            let it = &items[i];
            let left = it.x - it.w / 2.0;
            edges[e].label = Some((left + LABEL_TEXT, it.y + LABEL_H / 2.0 + 4.0));
        }
    }
    // Self-loops on the right side of their state.
    for (e, edge) in machine.edges.iter().enumerate() {
        if edge.from == edge.to {
            let p = &placed[edge.from];
            let (right, cy) = (p.x + p.w, p.y + p.h / 2.0);
            edges[e] = Route {
                path: vec![
                    Seg::Move((right, cy - 8.0)),
                    Seg::Cubic(
                        (right + 34.0, cy - 26.0),
                        (right + 34.0, cy + 26.0),
                        (right, cy + 8.0),
                    ),
                ],
                label: edge.label.as_ref().map(|_| (right + 32.0, cy + 4.0)),
            };
            let label = edge
                .label
                .as_ref()
                .map_or(0.0, |l| text_width(l, SMALL_PX) + 6.0);
            width = width.max(right + 36.0 + label + margin);
        }
    }
    Laid {
        x: 0.0,
        y: 0.0,
        w: width,
        h: height,
        nodes: placed,
        edges,
    }
}

/// Barycentre sweeps, down then up, keeping the order with the fewest crossings.
fn order_rows(rows: &mut [Vec<usize>], items: &[Item], up: &Links, down: &Links) {
    let count = |rows: &[Vec<usize>]| -> usize {
        let mut pos = vec![0usize; up.len()];
        for row in rows {
            for (p, &i) in row.iter().enumerate() {
                pos[i] = p;
            }
        }
        let mut total = 0;
        for row in rows {
            let pairs: Vec<(usize, usize)> = row
                .iter()
                .flat_map(|&i| down[i].iter().map(move |&(j, _, _)| (i, j)))
                .map(|(i, j)| (pos[i], pos[j]))
                .collect();
            for (k, a) in pairs.iter().enumerate() {
                for b in &pairs[k + 1..] {
                    if (a.0 < b.0 && a.1 > b.1) || (a.0 > b.0 && a.1 < b.1) {
                        total += 1;
                    }
                }
            }
        }
        total
    };
    let mut best = rows.to_vec();
    let mut best_count = count(rows);
    let mut pos = vec![0.0f64; up.len()];
    for iteration in 0..16 {
        if best_count == 0 {
            break;
        }
        let downward = iteration % 2 == 0;
        let order: Vec<usize> = if downward {
            (1..rows.len()).collect()
        } else {
            (0..rows.len().saturating_sub(1)).rev().collect()
        };
        for r in order {
            for row in rows.iter() {
                for (p, &i) in row.iter().enumerate() {
                    pos[i] = p as f64;
                }
            }
            let adjacent = if downward { up } else { down };
            let mut keyed: Vec<(f64, usize)> = rows[r]
                .iter()
                .map(|&i| {
                    let ns = &adjacent[i];
                    let key = if ns.is_empty() {
                        pos[i]
                    } else {
                        ns.iter().map(|&(j, _, _)| pos[j]).sum::<f64>() / ns.len() as f64
                    };
                    let outside = if items[i].back { 1e9 } else { 0.0 };
                    (key + outside, i)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            rows[r] = keyed.into_iter().map(|(_, i)| i).collect();
        }
        let c = count(rows);
        if c < best_count {
            best_count = c;
            best = rows.to_vec();
        }
    }
    rows.clone_from_slice(&best);
}

/// x positions: rows packed, then each moved as near as its order allows to its
/// neighbours' barycentre, sweeping down and up.
fn place_x(items: &mut [Item], rows: &[Vec<usize>], up: &Links, down: &Links) {
    let gap = |a: &Item, b: &Item| -> f64 {
        let sep = match (a.node.is_some(), b.node.is_some()) {
            (true, true) => SEP_NODES,
            (false, false) => SEP_DUMMY,
            _ => (SEP_NODES + SEP_DUMMY) / 2.0,
        };
        (a.w + b.w) / 2.0 + sep
    };
    for row in rows {
        let mut x = 0.0;
        for (k, &i) in row.iter().enumerate() {
            if k > 0 {
                x += gap(&items[row[k - 1]], &items[i]);
            }
            items[i].x = x;
        }
    }
    let place_row = |items: &mut [Item], row: &[usize], sides: &[&Links]| {
        if row.is_empty() {
            return;
        }
        let mut targets = Vec::with_capacity(row.len());
        let mut weights = Vec::with_capacity(row.len());
        for &i in row {
            let (mut sw, mut sx) = (0.0, 0.0);
            for side in sides {
                for &(j, w, offset) in &side[i] {
                    sw += w;
                    sx += w * (items[j].x + offset);
                }
            }
            if sw == 0.0 {
                targets.push(items[i].x);
                weights.push(0.25);
            } else {
                targets.push(sx / sw);
                weights.push(sw);
            }
        }
        let mins: Vec<f64> = row
            .windows(2)
            .map(|p| gap(&items[p[0]], &items[p[1]]))
            .collect();
        for (k, x) in isotonic(&targets, &weights, &mins).into_iter().enumerate() {
            items[row[k]].x = x;
        }
    };
    for iteration in 0..10 {
        let both = iteration >= 8;
        for row in rows.iter().skip(1) {
            let sides: Vec<&Links> = if both { vec![up, down] } else { vec![up] };
            place_row(items, row, &sides);
        }
        for row in rows.iter().rev().skip(1) {
            let sides: Vec<&Links> = if both { vec![up, down] } else { vec![down] };
            place_row(items, row, &sides);
        }
    }
}

/// Positions `x` minimising Σ weight·(x − target)² with x[k+1] − x[k] ≥ mins[k]:
/// pool-adjacent-violators on x − (sum of the gaps before it).
fn isotonic(targets: &[f64], weights: &[f64], mins: &[f64]) -> Vec<f64> {
    let mut offset = vec![0.0; targets.len()];
    for k in 1..targets.len() {
        offset[k] = offset[k - 1] + mins[k - 1];
    }
    // Blocks: (weight, weighted sum, count).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::new();
    for k in 0..targets.len() {
        blocks.push((weights[k], weights[k] * (targets[k] - offset[k]), 1));
        while blocks.len() > 1 {
            let (w2, s2, c2) = blocks[blocks.len() - 1];
            let (w1, s1, c1) = blocks[blocks.len() - 2];
            if s1 / w1 <= s2 / w2 {
                break;
            }
            blocks.pop();
            *blocks.last_mut().expect("two blocks") = (w1 + w2, s1 + s2, c1 + c2);
        }
    }
    let mut out = Vec::with_capacity(targets.len());
    for (w, s, c) in blocks {
        for _ in 0..c {
            out.push(s / w + offset[out.len()]);
        }
    }
    out
}

/// Where an edge meets a node's top (`bottom` false) or bottom side, `dx` from its centre.
fn port(node: &Node, p: &Placed, dx: f64, bottom: bool) -> (f64, f64) {
    let cx = p.x + p.w / 2.0;
    let edge_y = if bottom { p.y + p.h } else { p.y };
    match node.kind {
        Kind::Choice => {
            let inset = (p.h / 2.0) * (2.0 * dx.abs() / p.w);
            (
                cx + dx,
                if bottom {
                    edge_y - inset
                } else {
                    edge_y + inset
                },
            )
        }
        _ => (cx + dx, edge_y),
    }
}

#[allow(clippy::too_many_arguments)]
fn route(
    machine: &Machine,
    items: &[Item],
    chains: &[Vec<usize>],
    back: &[bool],
    placed: &[Placed],
    row_top: &[f64],
    row_h: &[f64],
    edges: &mut [Route],
) {
    let line_x = |i: usize| {
        let it = &items[i];
        if it.labelled {
            it.x - it.w / 2.0 + LABEL_LINE
        } else {
            it.x
        }
    };
    // Ports: the edges meeting each node's side, spread in the order of where they come
    // from. A forward edge leaves its source's bottom and enters its target's top; a back
    // edge leaves its source's side and enters its target's side, the side its points are on.
    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    enum Side {
        Top,
        Bottom,
        Left,
        Right,
    }
    // (node, side) → [(where the neighbouring point is, edge, at the edge's upper end)]
    type Attached = HashMap<(usize, Side), Vec<(f64, usize, bool)>>;
    let mut sides: Attached = HashMap::new();
    for (e, chain) in chains.iter().enumerate() {
        if chain.len() < 2 {
            continue;
        }
        let (upper, lower) = (chain[0], chain[chain.len() - 1]);
        let (after_upper, before_lower) = (chain[1], chain[chain.len() - 2]);
        let side_of = |v: usize, x: f64| {
            if x >= items[v].x {
                Side::Right
            } else {
                Side::Left
            }
        };
        let (upper_side, upper_key, lower_side, lower_key) = if back[e] {
            (
                side_of(upper, line_x(after_upper)),
                -row_top[items[after_upper].rank],
                side_of(lower, line_x(before_lower)),
                row_top[items[before_lower].rank],
            )
        } else {
            (
                Side::Bottom,
                line_x(after_upper),
                Side::Top,
                line_x(before_lower),
            )
        };
        sides
            .entry((upper, upper_side))
            .or_default()
            .push((upper_key, e, true));
        sides
            .entry((lower, lower_side))
            .or_default()
            .push((lower_key, e, false));
    }
    let mut ports: HashMap<(usize, bool), (Point, Side)> = HashMap::new();
    for ((v, side), mut list) in sides {
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let p = &placed[v];
        let node = &machine.nodes[v];
        let small = !node.kind.is_state();
        let vertical = matches!(side, Side::Left | Side::Right);
        let span = if vertical { p.h } else { p.w };
        let step = if small || list.len() < 2 {
            0.0
        } else {
            (span * 0.6 / (list.len() - 1) as f64).min(if vertical { 8.0 } else { 20.0 })
        };
        let mid = (list.len() as f64 - 1.0) / 2.0;
        for (k, (_, e, upper)) in list.into_iter().enumerate() {
            let d = (k as f64 - mid) * step;
            let point = match side {
                Side::Top => port(node, p, d, false),
                Side::Bottom => port(node, p, d, true),
                Side::Left | Side::Right => {
                    let cy = p.y + p.h / 2.0 + d;
                    // A diamond's side narrows away from its middle.
                    let inset = if node.kind == Kind::Choice {
                        (p.w / 2.0) * (2.0 * d.abs() / p.h)
                    } else {
                        0.0
                    };
                    if side == Side::Right {
                        (p.x + p.w - inset, cy)
                    } else {
                        (p.x + inset, cy)
                    }
                }
            };
            ports.insert((e, upper), (point, side));
        }
    }
    for (e, chain) in chains.iter().enumerate() {
        if chain.len() < 2 {
            continue;
        }
        let (start, _) = ports[&(e, true)];
        let (end, _) = ports[&(e, false)];
        // The dummies' runs through their rows, top to bottom.
        let runs: Vec<(Point, Point)> = chain[1..chain.len() - 1]
            .iter()
            .map(|&i| {
                let r = items[i].rank;
                let x = line_x(i);
                ((x, row_top[r]), (x, row_top[r] + row_h[r]))
            })
            .collect();
        let mut path = Vec::with_capacity(2 * runs.len() + 2);
        if back[e] {
            // From the real source (the lower end) up to the target, side to side.
            path.push(Seg::Move(end));
            let mut at = end;
            for (k, &(top, bottom)) in runs.iter().rev().enumerate() {
                path.push(if k == 0 {
                    corner(at, bottom, false)
                } else {
                    s_curve(at, bottom)
                });
                path.push(Seg::Line(top));
                at = top;
            }
            path.push(corner(at, start, true));
        } else {
            path.push(Seg::Move(start));
            let mut at = start;
            for &(top, bottom) in &runs {
                path.push(s_curve(at, top));
                if bottom != top {
                    path.push(Seg::Line(bottom));
                }
                at = bottom;
            }
            path.push(s_curve(at, end));
        }
        edges[e].path = path;
    }
}

pub fn translate(laid: &mut Laid, dx: f64, dy: f64) {
    laid.x += dx;
    laid.y += dy;
    for p in &mut laid.nodes {
        p.x += dx;
        p.y += dy;
        for child in &mut p.children {
            translate(child, dx, dy);
        }
    }
    for r in &mut laid.edges {
        let mv = |p: &mut Point| {
            p.0 += dx;
            p.1 += dy;
        };
        for seg in &mut r.path {
            match seg {
                Seg::Move(p) | Seg::Line(p) => mv(p),
                Seg::Cubic(a, b, c) => {
                    mv(a);
                    mv(b);
                    mv(c);
                }
            }
        }
        if let Some(l) = &mut r.label {
            l.0 += dx;
            l.1 += dy;
        }
    }
}
