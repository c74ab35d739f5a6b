//! Mermaid `flowchart TD` (renders in GitHub Markdown): a Parallel or Map state is a subgraph
//! holding one subgraph per machine, and edges into and out of it meet its border.

use super::layout::type_line;
use super::model::{EdgeKind, Kind, Machine};
use std::fmt::Write as _;

pub fn render(machine: &Machine) -> String {
    let mut out = String::from("flowchart TD\n");
    let mut edges = String::new();
    let mut next = 0;
    emit(&mut out, &mut edges, machine, &mut next, "  ", true);
    out.push_str(&edges);
    out.push_str(concat!(
        "  classDef task fill:#ddf4ff,stroke:#0969da\n",
        "  classDef pass fill:#f6f8fa,stroke:#6e7781\n",
        "  classDef wait fill:#fff8c5,stroke:#bf8700\n",
        "  classDef choice fill:#fbefff,stroke:#8250df\n",
        "  classDef succeed fill:#dafbe1,stroke:#1a7f37,stroke-width:2px\n",
        "  classDef fail fill:#ffebe9,stroke:#cf222e,stroke-width:2px\n",
        "  classDef terminal fill:#24292f,stroke:#24292f,color:#fff\n",
    ));
    out
}

/// Text inside Mermaid's quoted labels: its markup characters as entity codes.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '|' => out.push_str("#124;"),
            '`' => out.push_str("#96;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn emit(
    out: &mut String,
    edges: &mut String,
    machine: &Machine,
    next: &mut usize,
    indent: &str,
    top: bool,
) -> (String, String) {
    let mut ids = Vec::with_capacity(machine.nodes.len());
    for node in &machine.nodes {
        *next += 1;
        let mut label = format!("<b>{}</b><br/>{}", text(&node.name), text(&type_line(node)));
        for r in &node.retry {
            let _ = write!(label, "<br/>{}", text(r));
        }
        if !node.machines.is_empty() {
            let id = format!("s{next}");
            let _ = writeln!(out, "{indent}subgraph {id}[\"{label}\"]");
            let _ = writeln!(out, "{indent}  direction TB");
            let inner = format!("{indent}  ");
            for (i, m) in node.machines.iter().enumerate() {
                if node.kind == Kind::Map {
                    emit(out, edges, m, next, &inner, false);
                } else {
                    *next += 1;
                    let _ = writeln!(out, "{inner}subgraph s{next}[\"branch {}\"]", i + 1);
                    emit(out, edges, m, next, &format!("{inner}  "), false);
                    let _ = writeln!(out, "{inner}end");
                }
            }
            let _ = writeln!(out, "{indent}end");
            ids.push(id);
            continue;
        }
        let id = format!("n{next}");
        let (shape, class) = match node.kind {
            Kind::Start | Kind::End if top => (format!("([\"{}\"])", node.kind.name()), "terminal"),
            Kind::Start => ("((\" \"))".to_string(), "terminal"),
            Kind::End => ("(((\" \")))".to_string(), "terminal"),
            Kind::Task => (format!("(\"{label}\")"), "task"),
            Kind::Choice => (format!("{{\"{label}\"}}"), "choice"),
            Kind::Wait => (format!("{{{{\"{label}\"}}}}"), "wait"),
            Kind::Succeed => (format!("([\"{label}\"])"), "succeed"),
            Kind::Fail => (format!("[[\"{label}\"]]"), "fail"),
            _ => (format!("[\"{label}\"]"), "pass"),
        };
        let _ = writeln!(out, "{indent}{id}{shape}:::{class}");
        ids.push(id);
    }
    for edge in &machine.edges {
        let arrow = if edge.kind == EdgeKind::Catch {
            "-.->"
        } else {
            "-->"
        };
        let label = match &edge.label {
            Some(l) => format!("|\"{}\"|", text(l)),
            None => String::new(),
        };
        let _ = writeln!(
            edges,
            "  {} {arrow}{label} {}",
            ids[edge.from], ids[edge.to]
        );
    }
    (ids[0].clone(), ids[1].clone())
}
