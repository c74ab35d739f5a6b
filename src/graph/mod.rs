//! `expressway graph`: a definition drawn as a graph — SVG laid out here (`layout.rs`),
//! Graphviz DOT, or a Mermaid flowchart.
//!
//! Every machine (the top level, each Parallel branch, a Map's processor) has a Start and an
//! End node; a Parallel or Map state is a box holding its machines side by side. Choice
//! rules label their edges, Catch edges are dashed and labelled with their errors, Retry
//! rules are listed in their state.
//!
//! The SVG is meant to be embedded (the API's console does): no external resource, its
//! `<style>` scoped to `svg.ew-graph`, and stable hooks —
//! - each state: `<g class="state KIND" data-state="NAME" data-type="Task" data-box="X Y W H">`
//!   (`KIND` the type in lower case; `data-box` its box in the SVG's coordinates);
//! - each machine's Start and End: `<g class="start|end" data-node="ID">`, with `ID`
//!   `MACHINE#start` or `MACHINE#end` — `MACHINE` empty at the top level, `STATE[i]` for a
//!   Parallel's branch `i`, `STATE` for a Map's processor;
//! - each transition: `<g class="edge KIND" data-from="A" data-to="B" data-kind="KIND">`,
//!   A and B state names or those Start/End ids, `KIND` one of next, default, choice, catch,
//!   end.

mod dot;
mod layout;
mod mermaid;
mod model;
mod svg;
#[cfg(test)]
mod tests;

pub use model::{Edge, EdgeKind, Kind, Machine, Node};

use crate::asl::diagnostic::{codes, Diagnostic};
use serde_json::Value;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The definition does not validate: every diagnostic, as `expressway validate` has them.
    #[error("invalid definition: {}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Diagnostic>),
}

/// The graph model of a definition (validated first).
pub fn model(definition: &Value) -> Result<Machine, GraphError> {
    model::build(definition)
}

/// The definition as an SVG document, laid out by `layout.rs`.
pub fn svg(definition: &Value) -> Result<String, GraphError> {
    let machine = model::build(definition)?;
    let laid = layout::layout(&machine);
    Ok(svg::render(&machine, &laid))
}

/// The definition as a Graphviz `digraph` (`dot -Tsvg`), Parallel and Map as clusters.
pub fn dot(definition: &Value) -> Result<String, GraphError> {
    Ok(dot::render(&model::build(definition)?))
}

/// The definition as a Mermaid `flowchart TD`, Parallel and Map as subgraphs.
pub fn mermaid(definition: &Value) -> Result<String, GraphError> {
    Ok(mermaid::render(&model::build(definition)?))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Svg,
    Dot,
    Mermaid,
}

/// `expressway graph FILE [--format F] [--output PATH]`: exit 0 with the drawing on stdout
/// (or in PATH); 1 with the definition's diagnostics on stderr as `FILE:/pointer: CODE
/// message`; 2 when FILE cannot be read or PATH written.
pub fn command(file: &Path, format: Format, output: Option<&Path>) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let diagnostics = match serde_json::from_str::<Value>(&text) {
        Err(e) => vec![Diagnostic::new(
            codes::INVALID_JSON,
            "",
            format!("the definition is not JSON: {e}"),
        )],
        Ok(definition) => {
            let mut diags = crate::asl::validate::duplicate_keys(&text);
            let drawn = match format {
                Format::Svg => svg(&definition),
                Format::Dot => dot(&definition),
                Format::Mermaid => mermaid(&definition),
            };
            match drawn {
                Ok(drawing) if diags.is_empty() => {
                    match output {
                        Some(path) => std::fs::write(path, drawing)
                            .with_context(|| format!("cannot write {}", path.display()))?,
                        None => std::io::stdout().lock().write_all(drawing.as_bytes())?,
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                Ok(_) => {}
                Err(GraphError::Invalid(more)) => diags.extend(more),
            }
            diags
        }
    };
    let mut err = std::io::stderr().lock();
    for d in diagnostics {
        writeln!(
            err,
            "{}:{}: {} {}",
            file.display(),
            d.pointer,
            d.code,
            d.message
        )?;
    }
    Ok(ExitCode::from(1))
}

/// XML text and attribute escaping.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
