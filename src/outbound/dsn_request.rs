//! What a sender asked of delivery status notifications (RFC 3461): per message, whether a failure
//! report returns the whole message or its header (`RET`) and the sender's own name for the
//! transaction (`ENVID`); per recipient, which outcomes to report (`NOTIFY`) and the address as the
//! sender first wrote it (`ORCPT`). Kept with a queue entry as JSON, and passed on to a next server that
//! offers DSN itself, which then reports in our stead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// RFC 3461 §4.4: ENVID is at most 100 characters; §4.2: ORCPT at most 500.
pub const ENVID_CHARS_MAX: usize = 100;
pub const ORCPT_CHARS_MAX: usize = 500;

/// The whole message or only its header, in a failure report (`RET=FULL` / `RET=HDRS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ret {
    Full,
    Hdrs,
}

/// `NOTIFY`: which outcomes are reported. `NEVER` is all three false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    #[serde(default, skip_serializing_if = "is_false")]
    pub success: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub failure: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub delay: bool,
}

impl Notify {
    /// A NOTIFY value: `NEVER`, or one or more of `SUCCESS`, `FAILURE`, `DELAY` separated by commas
    /// (any case); `None` for anything else.
    pub fn parse(value: &str) -> Option<Notify> {
        if value.eq_ignore_ascii_case("NEVER") {
            return Some(Notify::default());
        }
        let mut n = Notify::default();
        for word in value.split(',') {
            let flag = match word.trim().to_ascii_uppercase().as_str() {
                "SUCCESS" => &mut n.success,
                "FAILURE" => &mut n.failure,
                "DELAY" => &mut n.delay,
                _ => return None,
            };
            *flag = true;
        }
        Some(n)
    }
}

fn is_false(b: &bool) -> bool {
    !b
}

/// One recipient's parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// None: no NOTIFY given, which reports failures (and may report delays) as if there were no DSN
    /// extension at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    /// The original recipient, decoded (`ORCPT=rfc822;...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
}

impl Recipient {
    pub fn wants_failure(&self) -> bool {
        self.notify.is_none_or(|n| n.failure)
    }

    pub fn wants_success(&self) -> bool {
        self.notify.is_some_and(|n| n.success)
    }
}

/// A message's DSN parameters: its own and its recipients'.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<Ret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// By recipient address as given in RCPT, lower-cased.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recipients: BTreeMap<String, Recipient>,
}

impl Request {
    /// Nothing was asked: the message is queued without DSN data, as before the extension.
    pub fn is_empty(&self) -> bool {
        self.ret.is_none() && self.envid.is_none() && self.recipients.is_empty()
    }

    /// Records `address`'s parameters, if it had any.
    pub fn add(&mut self, address: &str, recipient: Recipient) {
        if recipient != Recipient::default() {
            self.recipients
                .insert(address.to_ascii_lowercase(), recipient);
        }
    }

    /// `address`'s parameters (defaults when it gave none).
    pub fn recipient(&self, address: &str) -> Recipient {
        self.recipients
            .get(&address.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// As kept with a queue entry; `None` when nothing was asked.
    pub fn to_json(&self) -> Option<String> {
        (!self.is_empty()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    /// A queue entry's request; a missing or unreadable one asks nothing.
    pub fn from_json(json: Option<&str>) -> Request {
        json.and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default()
    }

    /// The MAIL parameters that pass this request on to a server offering DSN (leading space each).
    pub fn mail_params(&self) -> String {
        let mut out = String::new();
        match self.ret {
            Some(Ret::Full) => out.push_str(" RET=FULL"),
            Some(Ret::Hdrs) => out.push_str(" RET=HDRS"),
            None => {}
        }
        if let Some(envid) = &self.envid {
            out.push_str(&format!(" ENVID={}", xtext(envid)));
        }
        out
    }

    /// The RCPT parameters for `address`, likewise.
    pub fn rcpt_params(&self, address: &str) -> String {
        let r = self.recipient(address);
        let mut out = String::new();
        if let Some(n) = r.notify {
            let words: Vec<&str> = [
                (n.success, "SUCCESS"),
                (n.failure, "FAILURE"),
                (n.delay, "DELAY"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, w)| *w)
            .collect();
            let list = match words.is_empty() {
                true => "NEVER".to_string(),
                false => words.join(","),
            };
            out.push_str(&format!(" NOTIFY={list}"));
        }
        if let Some(orcpt) = &r.orcpt {
            out.push_str(&format!(" ORCPT=rfc822;{}", xtext(orcpt)));
        }
        out
    }
}

/// RFC 3461 §4: xtext, `+XX` for `+`, `=`, and whatever is not printable ASCII.
pub fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'!'..=b'~' if b != b'+' && b != b'=' => out.push(b as char),
            _ => out.push_str(&format!("+{b:02X}")),
        }
    }
    out
}

/// A decoded ENVID or ORCPT fit to be quoted in a report: printable ASCII, within `max` characters.
/// (Decoded xtext can hold anything, line breaks included, which would forge report fields.)
pub fn acceptable(text: &str, max: usize) -> bool {
    !text.is_empty() && text.len() <= max && text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_round_trip_and_pass_on() {
        let mut r = Request {
            ret: Some(Ret::Hdrs),
            envid: Some("QQ 314159+x=y".into()),
            ..Default::default()
        };
        r.add(
            "Bob@Else.test",
            Recipient {
                notify: Some(Notify {
                    success: true,
                    failure: true,
                    delay: false,
                }),
                orcpt: Some("bob@else.test".into()),
            },
        );
        r.add(
            "carol@else.test",
            Recipient {
                notify: Some(Notify::default()),
                orcpt: None,
            },
        );
        r.add("dave@else.test", Recipient::default());
        let back = Request::from_json(r.to_json().as_deref());
        assert_eq!(back, r);
        assert_eq!(back.mail_params(), " RET=HDRS ENVID=QQ+20314159+2Bx+3Dy");
        assert_eq!(
            back.rcpt_params("bob@else.test"),
            " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@else.test"
        );
        assert_eq!(back.rcpt_params("carol@else.test"), " NOTIFY=NEVER");
        assert_eq!(back.rcpt_params("dave@else.test"), "");
        assert!(back.recipient("BOB@else.test").wants_success());
        assert!(!back.recipient("carol@else.test").wants_failure());
        assert!(back.recipient("dave@else.test").wants_failure());
        assert!(!back.recipient("dave@else.test").wants_success());
        assert_eq!(Request::default().to_json(), None);
        assert_eq!(Request::from_json(Some("not json")), Request::default());
    }

    #[test]
    fn notify_values() {
        assert_eq!(Notify::parse("never"), Some(Notify::default()));
        assert_eq!(
            Notify::parse("SUCCESS,delay"),
            Some(Notify {
                success: true,
                failure: false,
                delay: true
            })
        );
        for bad in ["", "NEVER,SUCCESS", "SUCCESS,", "sometimes"] {
            assert_eq!(Notify::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_printable_text_is_quoted() {
        assert!(acceptable("abc 123", 100));
        assert!(!acceptable("abc\r\nX-Evil: 1", 100));
        assert!(!acceptable("", 100));
        assert!(!acceptable(&"a".repeat(101), 100));
    }
}
