//! JSONata's own error messages, as AWS quotes them in causes ("… threw an error during
//! evaluation. T1006: Attempted to invoke a non-function"), in the words of jsonata-js 2.0.6,
//! whose `populateMessage` words an error from its `errorCodes` table, filling `{{name}}` with
//! `JSON.stringify(err.name)` (so a string comes quoted, `undefined` reads "undefined") and
//! `{{{name}}}` with the bare value. jsonata-core words many errors differently or appends
//! things (": $randomSeeded", " (2 values)"). [`JS_MESSAGES`] holds the messages without a
//! placeholder, which replace jsonata-core's text whatever it says; [`FILLED`] rewrites
//! jsonata-core's text into the filled template when the values are in it.
//!
//! Left with jsonata-core's words, because its text lacks what jsonata-js shows:
//! D1002 (the value negated), T2007 and T2009 (the two values), T2010 (the operator),
//! T2011 and T2012 (the value), D2014 (the size asked for; jsonata-core also caps at 1e7),
//! D3030 for a non-string (jsonata-js never throws it for one), T0410, T0411 and
//! T0412 where jsonata-core does not name the function ("Argument 2 must be Number", and a
//! lambda's "Argument 1 of function does not match…"), T1003 for a function key (jsonata-js
//! prints its internals), and D3120/D3121 around an error not handled here. The S0xxx
//! syntax errors never come here (expressions are parsed when the state machine is
//! validated) and jsonata-core names tokens by its lexer ("RightBracket").

use jsonata_core::value::JValue;
use std::borrow::Cow;

/// AWS's wording of a jsonata-core error message `"CODE: text"`.
pub fn aws_wording(message: &str) -> Cow<'_, str> {
    js_message(message).map_or(message.into(), Cow::Owned)
}

/// jsonata-js's `"CODE: text"` for jsonata-core's `message`, if it can be told from it.
fn js_message(message: &str) -> Option<String> {
    let (code, text) = message.split_once(": ").unwrap_or((message, ""));
    if let Some((_, js)) = JS_MESSAGES.iter().find(|(c, _)| *c == code) {
        return Some(format!("{code}: {js}"));
    }
    let js = FILLED
        .iter()
        .filter(|(c, _, _)| *c == code)
        .find_map(|(_, core, js)| fill(js, &holes(core, text)?))?;
    Some(format!("{code}: {js}"))
}

/// What stands in `text` for each `{}` of `pattern`, if `text` has its shape.
fn holes<'a>(pattern: &str, text: &'a str) -> Option<Vec<&'a str>> {
    let mut literals = pattern.split("{}");
    let mut rest = text.strip_prefix(literals.next()?)?;
    let literals: Vec<&str> = literals.collect();
    let mut holes = Vec::with_capacity(literals.len());
    for (i, literal) in literals.iter().enumerate() {
        // The last hole runs to the pattern's end; the others to their literal's first match.
        let at = if i + 1 == literals.len() {
            rest.strip_suffix(literal)?.len()
        } else {
            rest.find(literal)?
        };
        holes.push(&rest[..at]);
        rest = &rest[at + literal.len()..];
    }
    rest.is_empty().then_some(holes)
}

/// `template` with its `{…}` markers replaced, in order, by `holes` rendered as the marker
/// says: `{}` as is, `{q}` a JSON string, `{n}` a JavaScript number, `{f}` a function name
/// as jsonata-js's token, `{t}` a signature type as jsonata-js's plural, `{j}` a JSON value,
/// `{m}` a nested error as its jsonata-js text, quoted. `None` if a hole does not fit.
fn fill(template: &str, holes: &[&str]) -> Option<String> {
    let (mut out, mut rest, mut holes) = (String::new(), template, holes.iter());
    while let Some(start) = rest.find('{') {
        let end = start + rest[start..].find('}')?;
        out.push_str(&rest[..start]);
        let hole = *holes.next()?;
        match &rest[start + 1..end] {
            "" => out.push_str(hole),
            "q" => out.push_str(&quote(hole)),
            "n" => out.push_str(&JValue::Number(hole.parse().ok()?).to_string()),
            // JSON.stringify(undefined), for an anonymous function, is no string at all.
            "f" if hole == "undefined" => out.push_str(hole),
            "f" => {
                let name = hole.strip_prefix('$').unwrap_or(hole);
                if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return None;
                }
                out.push_str(&quote(name));
            }
            "t" => {
                let (_, plural) = TYPES.iter().find(|(t, _)| *t == hole)?;
                out.push_str(&quote(plural));
            }
            "j" => {
                serde_json::from_str::<serde_json::Value>(hole).ok()?;
                out.push_str(hole);
            }
            "m" => {
                let inner = ["Type error: ", "Reference error: ", "Evaluation error: "]
                    .iter()
                    .find_map(|p| hole.strip_prefix(p))
                    .unwrap_or(hole);
                let inner = js_message(inner)?;
                out.push_str(&quote(inner.split_once(": ").map_or("", |(_, t)| t)));
            }
            _ => return None,
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn quote(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// jsonata-core's name of an array's item type (`a<s>`) → jsonata-js's.
const TYPES: &[(&str, &str)] = &[
    ("String", "strings"),
    ("Number", "numbers"),
    ("Boolean", "booleans"),
    ("Object", "objects"),
    ("Array", "arrays"),
    ("Function", "functions"),
];

/// (code, jsonata-core's text with `{}` holes, jsonata-js's filled template: see [`fill`]).
/// The first row of a code that fits wins. Rows whose two texts agree are here so that an
/// error nested in D3121 is known to read as jsonata-js's.
const FILLED: &[(&str, &str, &str)] = &[
    ("T0410", "Argument {} of function {} does not match function signature", "Argument {} of function {f} does not match function signature"),
    ("T0410", "Argument {} of function {} does not match function signature (expected {})", "Argument {} of function {f} does not match function signature"),
    ("T0410", "Argument {} of function {} must be a string", "Argument {} of function {f} does not match function signature"),
    ("T0411", "Context value is not a compatible type with argument {} of function {}", "Context value is not a compatible type with argument {} of function {f}"),
    ("T0412", "Argument {} of function {} must be an array of {}", "Argument {} of function {f} must be an array of {t}"),
    // jsonata-js checks a number only when it becomes Infinity (NaN is not numeric there),
    // and JSON.stringify(Infinity) is "null".
    ("D1001", "Number out of range", "Number out of range: null"),
    ("D1001", "Number out of range: {}", "Number out of range: null"),
    ("T1003", "Key in object structure must evaluate to a string; got: {}", "Key in object structure must evaluate to a string; got: {j}"),
    ("T1005", "Attempted to invoke a non-function. Did you mean ${}?", "Attempted to invoke a non-function. Did you mean ${}?"),
    ("T1007", "Attempted to partially apply a non-function. Did you mean ${}?", "Attempted to partially apply a non-function. Did you mean ${}?"),
    ("D1009", "Multiple key definitions evaluate to same key: {}", "Multiple key definitions evaluate to same key: {j}"),
    ("T1010", "The matcher function argument passed to function ${} does not return the correct object structure", "The matcher function argument passed to function {f} does not return the correct object structure"),
    ("T1010", "The matcher function argument passed to function \"{}\" does not return the correct object structure", "The matcher function argument passed to function {f} does not return the correct object structure"),
    ("T2001", "The left side of the {} operator must evaluate to a number", "The left side of the {q} operator must evaluate to a number"),
    ("T2002", "The right side of the {} operator must evaluate to a number", "The right side of the {q} operator must evaluate to a number"),
    ("D3030", "Cannot convert '{}' to number", "Unable to cast value to a number: {q}"),
    ("D3060", "The sqrt function cannot be applied to a negative number: {}", "The sqrt function cannot be applied to a negative number: {n}"),
    ("D3061", "The power function has resulted in a value that cannot be represented as a JSON number: base={}, exponent={}", "The power function has resulted in a value that cannot be represented as a JSON number: base={n}, exponent={n}"),
    // jsonata-core truncates a fractional radix where jsonata-js rounds it: same for integers.
    ("D3100", "Radix must be between 2 and 36, got {}", "The radix of the formatBase function must be between 2 and 36.  It was given {n}"),
    ("D3110", "The argument of the toMillis function must be an ISO 8601 formatted timestamp. Given \"{}\"", "The argument of the toMillis function must be an ISO 8601 formatted timestamp. Given {q}"),
    ("D3120", "The expression passed to $eval cannot be parsed: {}", "Syntax error in expression passed to function eval: {m}"),
    ("D3121", "{}", "Dynamic error evaluating the expression passed to function eval: {m}"),
    ("D3130", "{}", "Formatting or parsing an integer as a sequence starting with {q} is not supported by this implementation"),
    ("D3132", "{}", "Unknown component specifier {q} in date/time picture string"),
    ("D3133", "{}", "The 'name' modifier can only be applied to months and days in the date/time picture string, not {q}"),
    // jsonata-js falls back on its default for an empty message too (`message || …`).
    ("D3137", "", "$error() function evaluated"),
    ("D3137", "{}", "{}"),
    ("D3140", "Malformed URL passed to ${}(): \"{}\"", "Malformed URL passed to ${}(): {q}"),
    ("D3141", "", "$assert() statement failed"),
    ("D3141", "{}", "{}"),
];

const JS_MESSAGES: &[(&str, &str)] = &[
    ("S0101", "String literal must be terminated by a matching quote"),
    ("S0104", "The escape sequence \\u must be followed by 4 hex digits"),
    ("S0105", "Quoted property name must be terminated with a backquote (`)"),
    ("S0106", "Comment has no closing tag"),
    ("S0207", "Unexpected end of expression"),
    ("S0209", "A predicate cannot follow a grouping expression in a step"),
    ("S0210", "Each step can only have one grouping expression"),
    ("S0212", "The left side of := must be a variable name (start with $)"),
    ("S0215", "A context variable binding must precede any predicates on a step"),
    ("S0216", "A context variable binding must precede the 'order-by' clause on a step"),
    ("S0217", "The object representing the 'parent' cannot be derived from this expression"),
    ("S0301", "Empty regular expressions are not allowed"),
    ("S0302", "No terminating / in regular expression"),
    ("S0402", "Choice groups containing parameterized types are not supported"),
    ("S0401", "Type parameters can only be applied to functions and arrays"),
    ("S0500", "Attempted to evaluate an expression containing syntax error(s)"),
    ("D1004", "Regular expression matches zero length string"),
    ("T1006", "Attempted to invoke a non-function"),
    ("T1008", "Attempted to partially apply a non-function"),
    ("D1010", "Attempted to access the Javascript object prototype"),
    ("T2003", "The left side of the range operator (..) must evaluate to an integer"),
    ("T2004", "The right side of the range operator (..) must evaluate to an integer"),
    ("D2005", "The left side of := must be a variable name (start with $)"),
    ("T2006", "The right side of the function application operator ~> must be a function"),
    ("T2008", "The expressions within an order-by clause must evaluate to numeric or string values"),
    ("T2013", "The transform expression clones the input object using the $clone() function.  This has been overridden in the current scope by a non-function."),
    ("D3001", "Attempting to invoke string function on Infinity or NaN"),
    ("D3010", "Second argument of replace function cannot be an empty string"),
    ("D3011", "Fourth argument of replace function must evaluate to a positive number"),
    ("D3012", "Attempted to replace a matched string with a non-string value"),
    ("D3020", "Third argument of split function must evaluate to a positive number"),
    ("D3040", "Third argument of match function must evaluate to a positive number"),
    ("D3050", "The second argument of reduce function must be a function with at least two arguments"),
    ("D3070", "The single argument form of the sort function can only be applied to an array of strings or an array of numbers.  Use the second argument to specify a comparison function"),
    ("D3080", "The picture string must only contain a maximum of two sub-pictures"),
    ("D3081", "The sub-picture must not contain more than one instance of the 'decimal-separator' character"),
    ("D3082", "The sub-picture must not contain more than one instance of the 'percent' character"),
    ("D3083", "The sub-picture must not contain more than one instance of the 'per-mille' character"),
    ("D3084", "The sub-picture must not contain both a 'percent' and a 'per-mille' character"),
    ("D3085", "The mantissa part of a sub-picture must contain at least one character that is either an 'optional digit character' or a member of the 'decimal digit family'"),
    ("D3086", "The sub-picture must not contain a passive character that is preceded by an active character and that is followed by another active character"),
    ("D3087", "The sub-picture must not contain a 'grouping-separator' character that appears adjacent to a 'decimal-separator' character"),
    ("D3088", "The sub-picture must not contain a 'grouping-separator' at the end of the integer part"),
    ("D3089", "The sub-picture must not contain two adjacent instances of the 'grouping-separator' character"),
    ("D3090", "The integer part of the sub-picture must not contain a member of the 'decimal digit family' that is followed by an instance of the 'optional digit character'"),
    ("D3091", "The fractional part of the sub-picture must not contain an instance of the 'optional digit character' that is followed by a member of the 'decimal digit family'"),
    ("D3092", "A sub-picture that contains a 'percent' or 'per-mille' character must not contain a character treated as an 'exponent-separator'"),
    ("D3093", "The exponent part of the sub-picture must comprise only of one or more characters that are members of the 'decimal digit family'"),
    ("D3131", "In a decimal digit pattern, all digits must be from the same decimal group"),
    ("D3134", "The timezone integer format specifier cannot have more than four digits"),
    ("D3135", "No matching closing bracket ']' in date/time picture string"),
    ("D3136", "The date/time picture string is missing specifiers required to parse the timestamp"),
    ("D3138", "The $single() function expected exactly 1 matching result.  Instead it matched more."),
    ("D3139", "The $single() function expected exactly 1 matching result.  Instead it matched 0."),
];

#[cfg(test)]
mod tests {
    use super::super::{Env, Expr, NoContext};
    use super::*;

    /// jsonata-core's error for `expression`, as evaluation reports it (through [`aws_wording`]).
    fn error_of(expression: &str) -> String {
        let input = serde_json::Value::Null;
        let env = Env::new(&input, &NoContext, None, 0, 0);
        let expr = Expr::parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
        match expr.eval_full(&env) {
            Err(message) => message,
            Ok(_) => panic!("{expression} evaluated"),
        }
    }

    #[test]
    fn known_codes_take_jsonata_js_wording_and_lose_the_appended_token() {
        assert_eq!(
            aws_wording("T1006: Attempted to invoke a non-function: $randomSeeded"),
            "T1006: Attempted to invoke a non-function"
        );
        assert_eq!(
            aws_wording("D3138: The $single() function expected exactly 1 matching result.  Instead it matched more. (2 values)"),
            "D3138: The $single() function expected exactly 1 matching result.  Instead it matched more."
        );
        // A message whose jsonata-js placeholder jsonata-core's text cannot fill keeps its text.
        assert_eq!(
            aws_wording("D1002: Cannot negate non-number value"),
            "D1002: Cannot negate non-number value"
        );
        assert_eq!(aws_wording("no code here"), "no code here");
    }

    /// Each expected text is what jsonata-js 2.0.6 throws for the expression.
    #[test]
    fn placeholders_are_filled_as_jsonata_js_fills_them() {
        let cases = [
            (r#""a" - 1"#, r#"T2001: The left side of the "-" operator must evaluate to a number"#),
            (r#"1 + "a""#, r#"T2002: The right side of the "+" operator must evaluate to a number"#),
            ("1/0 + 1", "D1001: Number out of range: null"),
            (r#"$string({"a": 1/0})"#, "D1001: Number out of range: null"),
            ("{[1,2]: 2}", "T1003: Key in object structure must evaluate to a string; got: [1,2]"),
            (r#"{"a\"b": 1, "a\"b": 2}"#, r#"D1009: Multiple key definitions evaluate to same key: "a\"b""#),
            (r#"uppercase("a")"#, "T1005: Attempted to invoke a non-function. Did you mean $uppercase?"),
            ("uppercase(?)", "T1007: Attempted to partially apply a non-function. Did you mean $uppercase?"),
            (r#"$split("a", function($s){1})"#, r#"T1010: The matcher function argument passed to function "split" does not return the correct object structure"#),
            (r#"$replace("a", function($s){1}, "b")"#, r#"T1010: The matcher function argument passed to function "replace" does not return the correct object structure"#),
            ("$eval(1)", r#"T0410: Argument 1 of function "eval" does not match function signature"#),
            ("(|x|{}|)(1)", "T0410: Argument 1 of function undefined does not match function signature"),
            (r#"$number("a\"b")"#, r#"D3030: Unable to cast value to a number: "a\"b""#),
            ("$sqrt(-1e300)", "D3060: The sqrt function cannot be applied to a negative number: -1e+300"),
            ("$power(-8, 1/3)", "D3061: The power function has resulted in a value that cannot be represented as a JSON number: base=-8, exponent=0.3333333333333333"),
            ("$formatBase(10, 37)", "D3100: The radix of the formatBase function must be between 2 and 36.  It was given 37"),
            (r#"$toMillis("a\"b")"#, r#"D3110: The argument of the toMillis function must be an ISO 8601 formatted timestamp. Given "a\"b""#),
            (r#"$eval("1 +")"#, r#"D3120: Syntax error in expression passed to function eval: "Unexpected end of expression""#),
            (r#"$eval("uppercase(\"a\")")"#, r#"D3121: Dynamic error evaluating the expression passed to function eval: "Attempted to invoke a non-function. Did you mean $uppercase?""#),
            (r##"$formatInteger(5, "#")"##, r##"D3130: Formatting or parsing an integer as a sequence starting with "#" is not supported by this implementation"##),
            (r#"$fromMillis(0, "[Q]")"#, r#"D3132: Unknown component specifier "Q" in date/time picture string"#),
            (r#"$fromMillis(0, "[Hn]")"#, r#"D3133: The 'name' modifier can only be applied to months and days in the date/time picture string, not "H""#),
            (r#"$error("")"#, "D3137: $error() function evaluated"),
            (r#"$error("x: y")"#, "D3137: x: y"),
            (r#"$decodeUrl("a\"%C3")"#, r#"D3140: Malformed URL passed to $decodeUrl(): "a\"%C3""#),
            (r#"$assert(false, "")"#, "D3141: $assert() statement failed"),
        ];
        for (expression, expected) in cases {
            assert_eq!(error_of(expression), expected, "{expression}");
        }
    }

    /// Texts from jsonata-core's source that its own signature check forestalls today.
    #[test]
    fn function_names_in_jsonata_core_texts_are_quoted() {
        let cases = [
            ("T0410: Argument 2 of function $join does not match function signature (expected String)", r#"T0410: Argument 2 of function "join" does not match function signature"#),
            ("T0411: Context value is not a compatible type with argument 2 of function substringBefore", r#"T0411: Context value is not a compatible type with argument 2 of function "substringBefore""#),
            ("T0412: Argument 1 of function $join must be an array of String", r#"T0412: Argument 1 of function "join" must be an array of "strings""#),
        ];
        for (core, expected) in cases {
            assert_eq!(aws_wording(core), expected);
        }
    }

    /// jsonata-core's text lacks the values (or the function) jsonata-js shows: kept.
    #[test]
    fn texts_without_the_values_keep_jsonata_core_wording() {
        let cases = [
            (r#"-"a""#, "D1002: Cannot negate non-number value"),
            (r#"[1,"a"]^($)"#, "T2007: Type mismatch when comparing values in order-by clause: number and string"),
            (r#"1 < "a""#, r#"T2009: The expressions on either side of operator "<" must be of the same data type"#),
            ("1 > true", "T2010: Cannot compare number and boolean"),
            (r#"{"a":1} ~> |$|1|"#, "T2011: The second argument of the transform operator must evaluate to an object"),
            (r#"{"a":1} ~> |$|{}, 1|"#, "T2012: The third argument of the transform operator must be an array of strings"),
            ("$uppercase(1)", "T0410: Argument 1 must be String"),
            (r#"$sum("a")"#, "T0412: Argument 1 must be an array of Number"),
            ("function($x)<s>{$x}(1)", "T0410: Argument 1 of function does not match function signature (expected String)"),
            ("{$string: 1}", r#"T1003: Key in object structure must evaluate to a string; got: Builtin { name: "string" }"#),
            (r#"$eval("(1")"#, "D3120: The expression passed to $eval cannot be parsed: S0203: Expected RightParen before end of expression"),
        ];
        for (expression, expected) in cases {
            assert_eq!(error_of(expression), expected, "{expression}");
        }
    }
}
