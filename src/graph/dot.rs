//! Graphviz DOT: `expressway graph --format dot FILE | dot -Tsvg`. A Parallel or Map state is
//! a cluster holding one cluster per machine; edges into and out of it are clipped at its
//! border (`compound=true` with `lhead`/`ltail`).

use super::layout::type_line;
use super::model::{EdgeKind, Kind, Machine, END, START};
use std::fmt::Write as _;

pub fn render(machine: &Machine) -> String {
    let mut out = String::from(concat!(
        "digraph \"state machine\" {\n",
        "  compound=true; rankdir=TB; nodesep=0.4; ranksep=0.45;\n",
        "  fontname=\"Helvetica\"; fontsize=11;\n",
        "  node [fontname=\"Helvetica\", fontsize=11, style=filled, penwidth=1.2];\n",
        "  edge [fontname=\"Helvetica\", fontsize=10, color=\"#57606a\", fontcolor=\"#57606a\"];\n",
    ));
    let mut ids = Ids::default();
    let mut edges = String::new();
    emit(&mut out, &mut edges, machine, &mut ids, "  ", true);
    out.push_str(&edges);
    out.push_str("}\n");
    out
}

#[derive(Default)]
struct Ids {
    next: usize,
}

impl Ids {
    fn take(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }
}

/// How an edge reaches a node: the node itself, or a compound's first machine's Start (or
/// last machine's End) clipped at the compound's cluster.
struct Anchor {
    node: String,
    cluster: Option<String>,
}

fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes `machine`'s nodes and clusters into `out`, its edges into `edges`; returns the
/// anchors of its Start and End.
fn emit(
    out: &mut String,
    edges: &mut String,
    machine: &Machine,
    ids: &mut Ids,
    indent: &str,
    top: bool,
) -> (Anchor, Anchor) {
    let mut anchors: Vec<(Anchor, Anchor)> = Vec::with_capacity(machine.nodes.len());
    for node in &machine.nodes {
        if !node.machines.is_empty() {
            let cluster = ids.take("cluster_");
            let mut label = format!("{}\n{}", node.name, type_line(node));
            for r in &node.retry {
                label.push('\n');
                label.push_str(r);
            }
            let _ = writeln!(
                out,
                "{indent}subgraph {cluster} {{ label={}; style=\"rounded,filled\"; fillcolor=\"#f6f8fa\"; color=\"#57606a\";",
                quote(&label)
            );
            let inner = format!("{indent}  ");
            let mut first = None;
            let mut last = None;
            for (i, m) in node.machines.iter().enumerate() {
                let sub = ids.take("cluster_");
                let caption = if node.kind == Kind::Map {
                    "processor".to_string()
                } else {
                    format!("branch {}", i + 1)
                };
                let _ = writeln!(
                    out,
                    "{inner}subgraph {sub} {{ label={}; style=\"dashed,filled\"; fillcolor=\"#ffffff\"; color=\"#8c959f\";",
                    quote(&caption)
                );
                let (s, e) = emit(out, edges, m, ids, &format!("{inner}  "), false);
                let _ = writeln!(out, "{inner}}}");
                first.get_or_insert(s.node);
                last = Some(e.node);
            }
            let _ = writeln!(out, "{indent}}}");
            anchors.push((
                Anchor {
                    node: first.unwrap_or_default(),
                    cluster: Some(cluster.clone()),
                },
                Anchor {
                    node: last.unwrap_or_default(),
                    cluster: Some(cluster),
                },
            ));
            continue;
        }
        let id = ids.take("n");
        let attrs = match node.kind {
            Kind::Start | Kind::End if top => format!(
                "label={}, shape=box, style=\"rounded,filled\", fillcolor=\"#24292f\", fontcolor=white",
                quote(node.kind.name())
            ),
            Kind::Start => "label=\"\", shape=circle, width=0.18, fillcolor=\"#24292f\"".into(),
            Kind::End => {
                "label=\"\", shape=doublecircle, width=0.14, fillcolor=\"#24292f\"".into()
            }
            kind => {
                let mut label = format!("{}\n{}", node.name, type_line(node));
                for r in &node.retry {
                    label.push('\n');
                    label.push_str(r);
                }
                let (shape, style, fill, color) = match kind {
                    Kind::Task => ("box", "rounded,filled", "#ddf4ff", "#0969da"),
                    Kind::Choice => ("diamond", "filled", "#fbefff", "#8250df"),
                    Kind::Wait => ("hexagon", "filled", "#fff8c5", "#bf8700"),
                    Kind::Succeed => ("box", "rounded,filled,bold", "#dafbe1", "#1a7f37"),
                    Kind::Fail => ("octagon", "filled,bold", "#ffebe9", "#cf222e"),
                    _ => ("box", "filled", "#f6f8fa", "#6e7781"),
                };
                format!(
                    "label={}, shape={shape}, style=\"{style}\", fillcolor=\"{fill}\", color=\"{color}\"",
                    quote(&label)
                )
            }
        };
        let _ = writeln!(out, "{indent}{id} [{attrs}];");
        anchors.push((
            Anchor {
                node: id.clone(),
                cluster: None,
            },
            Anchor {
                node: id,
                cluster: None,
            },
        ));
    }
    for edge in &machine.edges {
        // Into a compound: its first Start; out of one: its last End.
        let from = &anchors[edge.from].1;
        let to = &anchors[edge.to].0;
        let mut attrs = Vec::new();
        if let Some(label) = &edge.label {
            attrs.push(format!("label={}", quote(&format!(" {label} "))));
        }
        match edge.kind {
            EdgeKind::Catch => {
                attrs.push("style=dashed, color=\"#cf222e\", fontcolor=\"#cf222e\"".into())
            }
            EdgeKind::Default => attrs.push("fontname=\"Helvetica-Oblique\"".into()),
            EdgeKind::Choice => attrs.push("fontcolor=\"#6639ba\"".into()),
            _ => {}
        }
        if let Some(c) = &from.cluster {
            attrs.push(format!("ltail={c}"));
        }
        if let Some(c) = &to.cluster {
            attrs.push(format!("lhead={c}"));
        }
        let _ = writeln!(
            edges,
            "  {} -> {} [{}];",
            from.node,
            to.node,
            attrs.join(", ")
        );
    }
    let mut taken = anchors.into_iter();
    let start = taken.nth(START).map(|a| a.0);
    let end = taken.next().map(|a| a.0);
    debug_assert_eq!(END, START + 1);
    (
        start.expect("every machine has a Start"),
        end.expect("every machine has an End"),
    )
}
