//! A small XML tree for the query and REST-XML protocols: responses are read into
//! [`Element`]s and then walked by their shapes; requests are written as text.

use quick_xml::events::Event;
use quick_xml::Reader;

/// One element: its local name (namespace prefixes dropped), attributes, children and text.
#[derive(Debug, Default, PartialEq)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the descendant at `path`, if there is one.
    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        let mut at = self;
        for name in path {
            at = at.child(name)?;
        }
        Some(&at.text)
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The document's root element.
pub fn parse(bytes: &[u8]) -> Result<Element, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(start) => stack.push(element(&start)?),
            Event::Empty(start) => {
                let done = element(&start)?;
                stack.last_mut().expect("root").children.push(done);
            }
            Event::End(_) => {
                let done = stack.pop().expect("balanced: quick-xml checks end tags");
                let Some(parent) = stack.last_mut() else {
                    return Err("unbalanced end tag".into());
                };
                parent.children.push(done);
            }
            Event::Text(t) => {
                let t = t.xml_content().map_err(|e| e.to_string())?;
                stack.last_mut().expect("root").text.push_str(&t);
            }
            Event::CData(t) => {
                let t = t.decode().map_err(|e| e.to_string())?;
                stack.last_mut().expect("root").text.push_str(&t);
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => match &*r.decode().map_err(|e| e.to_string())? {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => format!("&{other};"),
                    },
                };
                stack.last_mut().expect("root").text.push_str(&resolved);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut document = stack.pop().ok_or("empty document")?;
    if !stack.is_empty() {
        return Err("unclosed element".into());
    }
    document
        .children
        .pop()
        .filter(|_| document.children.is_empty())
        .ok_or_else(|| "no single root element".into())
}

fn element(start: &quick_xml::events::BytesStart<'_>) -> Result<Element, String> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        let key = String::from_utf8_lossy(attribute.key.local_name().as_ref()).into_owned();
        let value = attribute.unescape_value().map_err(|e| e.to_string())?;
        attributes.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attributes,
        ..Element::default()
    })
}

/// `text` with `<`, `>`, `&`, `"` and `'` escaped, for element text and attribute values.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_read_into_trees() {
        let doc = br#"<?xml version="1.0"?>
<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <PublishResult><MessageId>m&amp;1&#65;</MessageId></PublishResult>
  <ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata>
  <Empty a="x&lt;"/>
</PublishResponse>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "PublishResponse");
        assert_eq!(root.text_at(&["PublishResult", "MessageId"]), Some("m&1A"));
        assert_eq!(root.text_at(&["ResponseMetadata", "RequestId"]), Some("r1"));
        assert_eq!(root.child("Empty").unwrap().attribute("a"), Some("x<"));
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"").is_err());
        assert_eq!(escape("a<b&'"), "a&lt;b&amp;&apos;");
    }
}
