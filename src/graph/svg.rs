//! The SVG drawing of a laid-out graph. Self-contained: inline `<style>` scoped to
//! `svg.ew-graph`, no fonts or stylesheets fetched.

use super::layout::{
    display_name, header_height, type_line, Laid, Placed, Route, Seg, LINE_NAME, LINE_SMALL, PAD_Y,
};
use super::model::{EdgeKind, Kind, Machine, Node};
use super::xml_escape as esc;
use std::fmt::Write as _;

const STYLE: &str = "
svg.ew-graph{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}
svg.ew-graph .bg{fill:#fff}
svg.ew-graph text{font-size:13px;fill:#1f2328}
svg.ew-graph text.name{font-weight:600}
svg.ew-graph text.small{font-size:11px;fill:#57606a}
svg.ew-graph text.retry{font-size:11px;fill:#9a6700}
svg.ew-graph .shape{stroke-width:1.5}
svg.ew-graph .task .shape{fill:#ddf4ff;stroke:#0969da}
svg.ew-graph .pass .shape{fill:#f6f8fa;stroke:#6e7781}
svg.ew-graph .wait .shape{fill:#fff8c5;stroke:#bf8700}
svg.ew-graph .choice .shape{fill:#fbefff;stroke:#8250df}
svg.ew-graph .succeed .shape{fill:#dafbe1;stroke:#1a7f37;stroke-width:2}
svg.ew-graph .fail .shape{fill:#ffebe9;stroke:#cf222e;stroke-width:2}
svg.ew-graph .parallel .shape,svg.ew-graph .map .shape{fill:#f6f8fa;stroke:#57606a}
svg.ew-graph .cluster{fill:#fff;stroke:#8c959f;stroke-dasharray:4 3}
svg.ew-graph .start .shape,svg.ew-graph .end .shape{fill:#24292f;stroke:#24292f}
svg.ew-graph .end .ring{fill:#fff;stroke:#24292f;stroke-width:1.5}
svg.ew-graph .start text,svg.ew-graph .end text{fill:#fff;font-size:12px;font-weight:600}
svg.ew-graph .edge path{fill:none;stroke:#57606a;stroke-width:1.4}
svg.ew-graph .edge.catch path{stroke:#cf222e;stroke-dasharray:5 4}
svg.ew-graph .edge text{font-size:11px;fill:#57606a;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
svg.ew-graph .edge.choice text{fill:#6639ba}
svg.ew-graph .edge.default text{font-style:italic}
svg.ew-graph .edge.catch text{fill:#cf222e}
";

pub fn render(machine: &Machine, laid: &Laid) -> String {
    let (w, h) = (laid.w.ceil(), laid.h.ceil());
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="ew-graph" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">"#
    );
    out.push('\n');
    let _ = writeln!(out, "<style>{STYLE}</style>");
    out.push_str(concat!(
        "<defs>",
        r##"<marker id="ew-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker>"##,
        r##"<marker id="ew-arrow-catch" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#cf222e"/></marker>"##,
        "</defs>\n"
    ));
    let _ = writeln!(
        out,
        r#"<rect class="bg" x="0" y="0" width="{w}" height="{h}"/>"#
    );
    draw_machine(&mut out, machine, laid, true);
    out.push_str("</svg>\n");
    out
}

fn draw_machine(out: &mut String, machine: &Machine, laid: &Laid, top: bool) {
    if !top {
        let _ = writeln!(
            out,
            r#"<rect class="cluster" data-machine="{}" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="8"/>"#,
            esc(&machine.id),
            laid.x,
            laid.y,
            laid.w,
            laid.h
        );
    }
    // Boxes first, then what they hold, then this machine's edges, then its other nodes.
    for (node, p) in machine.nodes.iter().zip(&laid.nodes) {
        if !node.machines.is_empty() {
            draw_compound(out, node, p);
            for (m, child) in node.machines.iter().zip(&p.children) {
                draw_machine(out, m, child, false);
            }
        }
    }
    for (edge, route) in machine.edges.iter().zip(&laid.edges) {
        draw_edge(
            out,
            edge.kind,
            edge.label.as_deref(),
            &machine.nodes[edge.from].id,
            &machine.nodes[edge.to].id,
            route,
        );
    }
    for (node, p) in machine.nodes.iter().zip(&laid.nodes) {
        if node.machines.is_empty() {
            draw_node(out, node, p, top);
        }
    }
}

fn kind_class(kind: Kind) -> String {
    kind.name().to_ascii_lowercase()
}

fn open_state(out: &mut String, node: &Node, p: &Placed) {
    let _ = writeln!(
        out,
        r#"<g class="state {}" data-state="{}" data-type="{}" data-box="{:.1} {:.1} {:.1} {:.1}"><title>{} ({})</title>"#,
        kind_class(node.kind),
        esc(&node.name),
        node.kind.name(),
        p.x,
        p.y,
        p.w,
        p.h,
        esc(&node.name),
        node.kind.name()
    );
}

fn text(out: &mut String, class: &str, x: f64, y: f64, anchor: &str, content: &str) {
    let _ = writeln!(
        out,
        r#"<text class="{class}" x="{x:.1}" y="{y:.1}" text-anchor="{anchor}">{}</text>"#,
        esc(content)
    );
}

fn draw_compound(out: &mut String, node: &Node, p: &Placed) {
    open_state(out, node, p);
    let _ = writeln!(
        out,
        r#"<rect class="shape" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="10"/>"#,
        p.x, p.y, p.w, p.h
    );
    let cx = p.x + p.w / 2.0;
    let mut y = p.y + PAD_Y + 13.0;
    text(out, "name", cx, y, "middle", &display_name(node));
    y += LINE_SMALL + 1.0;
    text(out, "small", cx, y, "middle", &type_line(node));
    for r in &node.retry {
        y += LINE_SMALL;
        text(out, "retry", cx, y, "middle", r);
    }
    debug_assert!(y <= p.y + header_height(node));
    out.push_str("</g>\n");
}

fn draw_node(out: &mut String, node: &Node, p: &Placed, top: bool) {
    let (x, y, w, h) = (p.x, p.y, p.w, p.h);
    let (cx, cy) = (x + w / 2.0, y + h / 2.0);
    if !node.kind.is_state() {
        let class = kind_class(node.kind);
        let _ = writeln!(
            out,
            r#"<g class="{class}" data-node="{}"><title>{}</title>"#,
            esc(&node.id),
            node.kind.name()
        );
        if top {
            let _ = writeln!(
                out,
                r#"<rect class="shape" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="{:.1}"/>"#,
                h / 2.0
            );
            text(out, "", cx, cy + 4.0, "middle", node.kind.name());
        } else if node.kind == Kind::Start {
            let _ = writeln!(
                out,
                r#"<circle class="shape" cx="{cx:.1}" cy="{cy:.1}" r="{:.1}"/>"#,
                w / 2.0 - 1.0
            );
        } else {
            let _ = writeln!(
                out,
                r#"<circle class="ring" cx="{cx:.1}" cy="{cy:.1}" r="{:.1}"/><circle class="shape" cx="{cx:.1}" cy="{cy:.1}" r="{:.1}"/>"#,
                w / 2.0 - 1.0,
                w / 2.0 - 4.5
            );
        }
        out.push_str("</g>\n");
        return;
    }
    open_state(out, node, p);
    let shape = match node.kind {
        Kind::Choice => format!(
            r#"<polygon class="shape" points="{cx:.1},{y:.1} {:.1},{cy:.1} {cx:.1},{:.1} {x:.1},{cy:.1}"/>"#,
            x + w,
            y + h
        ),
        Kind::Wait => {
            let c = 10.0;
            format!(
                r#"<polygon class="shape" points="{:.1},{y:.1} {:.1},{y:.1} {:.1},{cy:.1} {:.1},{:.1} {:.1},{:.1} {x:.1},{cy:.1}"/>"#,
                x + c,
                x + w - c,
                x + w,
                x + w - c,
                y + h,
                x + c,
                y + h
            )
        }
        Kind::Fail => {
            let c = 9.0;
            format!(
                r#"<polygon class="shape" points="{:.1},{y:.1} {:.1},{y:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {x:.1},{:.1} {x:.1},{:.1}"/>"#,
                x + c,
                x + w - c,
                x + w,
                y + c,
                x + w,
                y + h - c,
                x + w - c,
                y + h,
                x + c,
                y + h,
                y + h - c,
                y + c
            )
        }
        _ => {
            let rx = match node.kind {
                Kind::Task => 10.0,
                Kind::Succeed => h / 2.0,
                _ => 2.0,
            };
            format!(
                r#"<rect class="shape" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="{rx:.1}"/>"#
            )
        }
    };
    out.push_str(&shape);
    out.push('\n');
    if node.kind == Kind::Choice {
        text(out, "name", cx, cy - 1.0, "middle", &display_name(node));
        text(out, "small", cx, cy + 13.0, "middle", &type_line(node));
    } else {
        let mut ty = y + PAD_Y + 13.0;
        text(out, "name", cx, ty, "middle", &display_name(node));
        ty += LINE_NAME - 2.0;
        text(out, "small", cx, ty, "middle", &type_line(node));
        for r in &node.retry {
            ty += LINE_SMALL;
            text(out, "retry", cx, ty, "middle", r);
        }
    }
    out.push_str("</g>\n");
}

fn draw_edge(
    out: &mut String,
    kind: EdgeKind,
    label: Option<&str>,
    from: &str,
    to: &str,
    route: &Route,
) {
    let kind_name = match kind {
        EdgeKind::Next => "next",
        EdgeKind::Default => "default",
        EdgeKind::Choice => "choice",
        EdgeKind::Catch => "catch",
        EdgeKind::End => "end",
    };
    let _ = writeln!(
        out,
        r#"<g class="edge {kind_name}" data-from="{}" data-to="{}" data-kind="{kind_name}">"#,
        esc(from),
        esc(to)
    );
    let mut d = String::new();
    for seg in &route.path {
        let _ = match *seg {
            Seg::Move((x, y)) => write!(d, "M{x:.1},{y:.1}"),
            Seg::Line((x, y)) => write!(d, " L{x:.1},{y:.1}"),
            Seg::Cubic((x1, y1), (x2, y2), (x, y)) => {
                write!(d, " C{x1:.1},{y1:.1} {x2:.1},{y2:.1} {x:.1},{y:.1}")
            }
        };
    }
    let marker = if kind == EdgeKind::Catch {
        "ew-arrow-catch"
    } else {
        "ew-arrow"
    };
    let _ = writeln!(out, r#"<path d="{d}" marker-end="url(#{marker})"/>"#);
    if let (Some(label), Some((x, y))) = (label, route.label) {
        text(out, "label", x, y, "start", label);
    }
    out.push_str("</g>\n");
}
