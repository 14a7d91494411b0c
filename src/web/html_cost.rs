//! What cleaning a message's HTML will cost, estimated before it is parsed. The parser under ammonia
//! (html5ever) does work that grows with the square of how deeply elements nest, and of how many
//! formatting elements it must reopen; on the blocking pool nothing can stop it once it has begun. A
//! walk over the tags models the parser's stack of open elements and its list of active formatting
//! elements, erring towards more work, and a message past [`HTML_NESTING_WORK_MAX`] is shown as its text.

use std::collections::HashSet;

/// The most work the HTML parser under ammonia may be given by one message, as [`nesting_work`]
/// estimates it. html5ever walks its stack of open elements at each start tag, so n nested elements
/// cost about n²/2 steps: 100,000 nested `<div>`s (500 KB, well within a message's size) took 37 s of
/// CPU here, and a million would take an hour, on the blocking pool where nothing can cancel it. 50
/// million is 10,000 nested elements, about 0.2 s; real mail nests a few dozen deep.
const HTML_NESTING_WORK_MAX: u64 = 50_000_000;

/// Elements that never hold others (void elements): they do not deepen the stack.
const VOID_ELEMENTS: [&[u8]; 13] = [
    b"area", b"base", b"br", b"col", b"embed", b"hr", b"img", b"input", b"link", b"meta",
    b"source", b"track", b"wbr",
];

/// Elements a start tag of their own kind closes when one is the current element (`<li>a<li>b`).
const SELF_CLOSING_SIBLINGS: [&[u8]; 8] =
    [b"p", b"li", b"dt", b"dd", b"tr", b"td", b"th", b"option"];

/// Elements an end tag of a special element closes on its way down (HTML's "implied end tags").
const IMPLIED_END: [&[u8]; 10] = [
    b"dd",
    b"dt",
    b"li",
    b"optgroup",
    b"option",
    b"p",
    b"rb",
    b"rp",
    b"rt",
    b"rtc",
];

/// HTML's "special" elements (less the void ones): an end tag of another element stops at them,
/// closing nothing (`<span><div></span>` leaves both open).
const SPECIAL: [&[u8]; 70] = [
    b"address",
    b"applet",
    b"article",
    b"aside",
    b"basefont",
    b"bgsound",
    b"blockquote",
    b"body",
    b"button",
    b"caption",
    b"center",
    b"colgroup",
    b"dd",
    b"details",
    b"dir",
    b"div",
    b"dl",
    b"dt",
    b"fieldset",
    b"figcaption",
    b"figure",
    b"footer",
    b"form",
    b"frame",
    b"frameset",
    b"h1",
    b"h2",
    b"h3",
    b"h4",
    b"h5",
    b"h6",
    b"head",
    b"header",
    b"hgroup",
    b"html",
    b"iframe",
    b"keygen",
    b"li",
    b"listing",
    b"main",
    b"marquee",
    b"menu",
    b"nav",
    b"noembed",
    b"noframes",
    b"noscript",
    b"object",
    b"ol",
    b"p",
    b"param",
    b"plaintext",
    b"pre",
    b"script",
    b"search",
    b"section",
    b"select",
    b"style",
    b"summary",
    b"table",
    b"tbody",
    b"td",
    b"template",
    b"textarea",
    b"tfoot",
    b"th",
    b"thead",
    b"title",
    b"tr",
    b"ul",
    b"xmp",
];

/// Formatting elements: the parser remembers them, and reopens those a block's end closed at the next
/// text or inline element (HTML's "reconstruct the active formatting elements").
const FORMATTING: [&[u8]; 14] = [
    b"a", b"b", b"big", b"code", b"em", b"font", b"i", b"nobr", b"s", b"small", b"strike",
    b"strong", b"tt", b"u",
];

/// Elements that put a marker on the list of formatting elements: none is reopened across one.
const MARKERS: [&[u8]; 7] = [
    b"applet",
    b"caption",
    b"marquee",
    b"object",
    b"template",
    b"td",
    b"th",
];

/// At most this many identical formatting elements (name and attributes) stay listed after the last
/// marker (HTML's "Noah's Ark" clause).
const IDENTICAL_FORMATTING_MAX: usize = 3;

fn is_in(list: &[&[u8]], name: &[u8]) -> bool {
    list.contains(&name)
}

/// Whether cleaning `html` would cost more than a message may.
pub fn too_costly(html: &str) -> bool {
    nesting_work(html) > HTML_NESTING_WORK_MAX
}

/// One formatting element remembered: its name, its attributes' text, and the element it is now.
type Formatting = (Vec<u8>, Vec<u8>, u32);

/// The parser's state as the walk models it.
#[derive(Default)]
struct Walk {
    /// Open elements: name and a number naming the element.
    open: Vec<(Vec<u8>, u32)>,
    on_stack: HashSet<u32>,
    /// Active formatting elements; `None` is a marker.
    active: Vec<Option<Formatting>>,
    next_id: u32,
    work: u64,
}

impl Walk {
    fn push(&mut self, name: Vec<u8>) -> u32 {
        self.next_id += 1;
        self.on_stack.insert(self.next_id);
        self.open.push((name, self.next_id));
        self.work = self.work.saturating_add(self.open.len() as u64);
        self.next_id
    }

    fn truncate(&mut self, len: usize) {
        for (_, id) in self.open.drain(len..) {
            self.on_stack.remove(&id);
        }
    }

    /// Reopens the formatting elements a block's end closed, as the parser does before text and
    /// inline elements: each is a new element, as deep as the stack then is.
    fn reconstruct(&mut self) {
        let mut first = self.active.len();
        while first > 0 {
            match &self.active[first - 1] {
                Some((_, _, id)) if !self.on_stack.contains(id) => first -= 1,
                _ => break,
            }
        }
        for i in first..self.active.len() {
            let Some((name, attributes, _)) = self.active[i].clone() else {
                continue;
            };
            let id = self.push(name.clone());
            self.active[i] = Some((name, attributes, id));
        }
    }

    fn clear_to_marker(&mut self) {
        while let Some(entry) = self.active.pop() {
            if entry.is_none() {
                break;
            }
        }
    }

    fn start(&mut self, name: Vec<u8>, attributes: &[u8]) {
        if !is_in(&SPECIAL, &name) {
            self.reconstruct();
        }
        if is_in(&VOID_ELEMENTS, &name) {
            self.work = self.work.saturating_add(self.open.len() as u64);
            return;
        }
        if is_in(&SELF_CLOSING_SIBLINGS, &name)
            && self.open.last().is_some_and(|(top, _)| *top == name)
        {
            let len = self.open.len() - 1;
            self.truncate(len);
        }
        let id = self.push(name.clone());
        if is_in(&MARKERS, &name) {
            self.active.push(None);
        } else if is_in(&FORMATTING, &name) {
            let since_marker = self
                .active
                .iter()
                .rposition(Option::is_none)
                .map_or(0, |m| m + 1);
            let same: Vec<usize> = (since_marker..self.active.len())
                .filter(|&i| {
                    matches!(&self.active[i], Some((n, a, _)) if *n == name && a == attributes)
                })
                .collect();
            if same.len() >= IDENTICAL_FORMATTING_MAX {
                self.active.remove(same[0]);
            }
            self.active.push(Some((name, attributes.to_vec(), id)));
        }
    }

    fn end(&mut self, name: Vec<u8>) {
        if is_in(&FORMATTING, &name) {
            let since_marker = self
                .active
                .iter()
                .rposition(Option::is_none)
                .map_or(0, |m| m + 1);
            let listed = (since_marker..self.active.len())
                .rev()
                .find(|&i| matches!(&self.active[i], Some((n, _, _)) if *n == name));
            if let Some(i) = listed {
                let Some((_, _, id)) = self.active.remove(i) else {
                    return;
                };
                if let Some(at) = self.open.iter().rposition(|(_, open)| *open == id) {
                    self.work = self.work.saturating_add((self.open.len() - at) as u64);
                    self.truncate(at);
                }
                return;
            }
        }
        let special_end = is_in(&SPECIAL, &name);
        let mut closes = None;
        for (i, (node, _)) in self.open.iter().enumerate().rev() {
            // Looking down the stack costs what the parser's own look costs: counted too.
            self.work = self.work.saturating_add(1);
            if *node == name {
                closes = Some(i);
                break;
            }
            let passed_over = special_end && is_in(&IMPLIED_END, node);
            if is_in(&SPECIAL, node) && !passed_over {
                break;
            }
        }
        if let Some(i) = closes {
            self.truncate(i);
            if is_in(&MARKERS, &name) {
                self.clear_to_marker();
            }
        }
    }
}

/// An estimate of the parser's work on `html` (see [`HTML_NESTING_WORK_MAX`]): for each element it
/// opens, or reopens, how deep it is; and for each end tag, how far down the stack it looks. It stops
/// counting once past the bound. It errs towards more: `<div></x>`, `<span><div></span>` and
/// `<div><b id=N></div>` repeated, each measured as flat by a simpler walk, took 12 to 34 s of CPU to
/// clean at about 100 KB.
fn nesting_work(html: &str) -> u64 {
    let bytes = html.as_bytes();
    let name_at = |at: usize| {
        let end = bytes[at..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .map_or(bytes.len(), |n| at + n);
        (bytes[at..end].to_ascii_lowercase(), end)
    };
    let mut walk = Walk::default();
    let mut text_from = 0;
    while let Some(found) = bytes[text_from..].iter().position(|&b| b == b'<') {
        let lt = text_from + found;
        if bytes[text_from..lt]
            .iter()
            .any(|b| !b.is_ascii_whitespace())
        {
            walk.reconstruct();
        }
        let at = lt + 1;
        let tag_end = bytes[at..]
            .iter()
            .position(|&b| b == b'>')
            .map_or(bytes.len(), |n| at + n);
        match bytes.get(at) {
            Some(b'/') if bytes.get(at + 1).is_some_and(u8::is_ascii_alphabetic) => {
                walk.end(name_at(at + 1).0);
            }
            Some(b) if b.is_ascii_alphabetic() => {
                let (name, name_end) = name_at(at);
                walk.start(name, &bytes[name_end.min(tag_end)..tag_end]);
            }
            _ => {}
        }
        if walk.work > HTML_NESTING_WORK_MAX {
            break;
        }
        text_from = (tag_end + 1).min(bytes.len());
        if text_from >= bytes.len() {
            break;
        }
    }
    walk.work
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_estimated_before_it_is_parsed() {
        // About 10,000 nested elements: the most cleaned as HTML.
        let nested = |n: usize| "<div>".repeat(n) + "x" + &"</div>".repeat(n);
        assert!(nesting_work(&nested(9_900)) <= HTML_NESTING_WORK_MAX);
        assert!(nesting_work(&nested(10_100)) > HTML_NESTING_WORK_MAX);
        // A long flat newsletter (50,000 rows of a table, lines broken, paragraphs never closed)
        // is cheap however long.
        let row = "<tr><td><p>row<br><img src=x></td></tr>\n";
        let flat = "<table>".to_string() + &row.repeat(50_000);
        assert!(
            nesting_work(&flat) <= 20 * 50_000 + 1,
            "{}",
            nesting_work(&flat)
        );
        assert_eq!(nesting_work("a < b </ c <"), 0);
        // End tags of elements that are not open close nothing: still 20,000 deep.
        assert!(nesting_work(&"<div></x>".repeat(20_000)) > HTML_NESTING_WORK_MAX);
        assert!(nesting_work(&"<div></DIV>".repeat(20_000)) < 100_000);
        // An end tag closes what was opened after its element too.
        // (`<b>` stays listed, so `<i>` first reopens it.)
        assert_eq!(
            nesting_work("<div><span><b></div><i>"),
            1 + 2 + 3 + 3 + 1 + 2
        );
        // ...but not past a special element: `</span>` under an open `<div>` closes nothing.
        assert!(nesting_work(&"<span><div></span>".repeat(10_000)) > HTML_NESTING_WORK_MAX);
        // Siblings that close each other, and implied ends, keep a list flat.
        assert!(nesting_work(&"<option><span>".repeat(10_000)) > HTML_NESTING_WORK_MAX);
        assert!(nesting_work(&"<ul><li>a<li>b<li><p>c</ul>".repeat(10_000)) < 200_000);
    }

    #[test]
    fn formatting_elements_reopened_are_counted() {
        // A block's end leaves each <b> listed; the next one reopens them all (a different id each, so
        // none is dropped as a duplicate).
        let reopened = (0..5_000)
            .map(|i| format!("<div><b id={i}></div>"))
            .collect::<String>();
        assert!(nesting_work(&reopened) > HTML_NESTING_WORK_MAX);
        // Identical ones stay at three: sloppy mail that never closes its <font> is cheap.
        let sloppy = "<p><font face=Arial>text</p>".repeat(20_000);
        assert!(
            nesting_work(&sloppy) < 1_000_000,
            "{}",
            nesting_work(&sloppy)
        );
        // Closed ones leave nothing to reopen.
        let tidy = "<div><b>bold</b> and <i>it</i></div>".repeat(20_000);
        assert!(nesting_work(&tidy) < 1_000_000, "{}", nesting_work(&tidy));
        // A table cell's marker keeps what is listed outside it from being reopened inside.
        let cells = "<b><table><tr><td>x</td></tr></table></b>".repeat(1_000);
        assert!(nesting_work(&cells) < 1_000_000, "{}", nesting_work(&cells));
    }
}
