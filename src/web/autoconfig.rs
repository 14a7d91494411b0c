//! Client autoconfiguration: Thunderbird's autoconfig XML, Outlook's autodiscover XML and an Apple
//! configuration profile, each naming exactly the listeners this server runs (implicit TLS preferred,
//! STARTTLS otherwise; a protocol that is off is not offered).

use crate::config::Config;

/// Where a client reaches one protocol: the port, and whether TLS is implicit (else STARTTLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub port: u16,
    pub implicit_tls: bool,
}

/// The endpoints a client is offered, best first.
pub struct Offer {
    pub host: String,
    pub imap: Vec<Endpoint>,
    pub pop3: Vec<Endpoint>,
    pub smtp: Vec<Endpoint>,
}

impl Offer {
    pub fn of(config: &Config) -> Offer {
        let pick = |tls: Option<u16>, plain: Option<u16>| -> Vec<Endpoint> {
            let tls = tls.map(|port| Endpoint {
                port,
                implicit_tls: true,
            });
            let plain = plain.map(|port| Endpoint {
                port,
                implicit_tls: false,
            });
            tls.into_iter().chain(plain).collect()
        };
        Offer {
            host: config.hostname().to_string(),
            imap: pick(config.imaps_port, config.imap_port),
            pop3: pick(config.pop3s_port, config.pop3_port),
            smtp: pick(config.submissions_port, config.submission_port),
        }
    }
}

/// Text made safe inside XML (element content and attribute values).
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Thunderbird's config-v1.1.xml for `domain` (usernames are the address's local part: the one
/// user-name rule takes `bob` and `bob@domain` alike, and the local part is what every protocol shows).
pub fn thunderbird(offer: &Offer, domain: &str) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n",
    );
    out += &format!(
        "  <emailProvider id=\"{d}\">\n    <domain>{d}</domain>\n    <displayName>{d} (Jmail)</displayName>\n    <displayShortName>{d}</displayShortName>\n",
        d = xml(domain)
    );
    let server = |kind: &str, tag: &str, e: &Endpoint| {
        format!(
            "    <{tag} type=\"{kind}\">\n      <hostname>{}</hostname>\n      <port>{}</port>\n      <socketType>{}</socketType>\n      <authentication>password-cleartext</authentication>\n      <username>%EMAILLOCALPART%</username>\n    </{tag}>\n",
            xml(&offer.host),
            e.port,
            if e.implicit_tls { "SSL" } else { "STARTTLS" }
        )
    };
    for e in &offer.imap {
        out += &server("imap", "incomingServer", e);
    }
    for e in &offer.pop3 {
        out += &server("pop3", "incomingServer", e);
    }
    for e in &offer.smtp {
        out += &server("smtp", "outgoingServer", e);
    }
    out += "  </emailProvider>\n</clientConfig>\n";
    out
}

/// Outlook's autodiscover (the POX response) for `address`'s account.
pub fn outlook(offer: &Offer, login: &str) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\n  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">\n    <Account>\n      <AccountType>email</AccountType>\n      <Action>settings</Action>\n",
    );
    let protocol = |kind: &str, e: &Endpoint| {
        let encryption = match e.implicit_tls {
            true => "<SSL>on</SSL>",
            false => "<SSL>off</SSL><Encryption>TLS</Encryption>",
        };
        format!(
            "      <Protocol><Type>{kind}</Type><Server>{}</Server><Port>{}</Port><LoginName>{}</LoginName><DomainRequired>off</DomainRequired><SPA>off</SPA>{encryption}<AuthRequired>on</AuthRequired></Protocol>\n",
            xml(&offer.host),
            e.port,
            xml(login)
        )
    };
    for (kind, list) in [
        ("IMAP", &offer.imap),
        ("POP3", &offer.pop3),
        ("SMTP", &offer.smtp),
    ] {
        if let Some(best) = list.first() {
            out += &protocol(kind, best);
        }
    }
    out += "    </Account>\n  </Response>\n</Autodiscover>\n";
    out
}

/// An Apple configuration profile (`.mobileconfig`) with one mail account for `address` (IMAP, else
/// POP3; the password is asked on the device).
pub fn apple(offer: &Offer, address: &str, login: &str) -> Option<String> {
    let (kind, incoming) = match (offer.imap.first(), offer.pop3.first()) {
        (Some(e), _) => ("EmailTypeIMAP", e),
        (None, Some(e)) => ("EmailTypePOP", e),
        (None, None) => return None,
    };
    let outgoing = offer.smtp.first()?;
    let uuid = |seed: u64| {
        let r: u128 = rand::random::<u128>() ^ u128::from(seed);
        let h = format!("{r:032X}");
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    };
    let host = xml(&offer.host);
    let (address, login) = (xml(address), xml(login));
    let b = |v: bool| if v { "<true/>" } else { "<false/>" };
    Some(format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>EmailAccountDescription</key><string>{address}</string>
      <key>EmailAccountName</key><string>{login}</string>
      <key>EmailAccountType</key><string>{kind}</string>
      <key>EmailAddress</key><string>{address}</string>
      <key>IncomingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>IncomingMailServerHostName</key><string>{host}</string>
      <key>IncomingMailServerPortNumber</key><integer>{}</integer>
      <key>IncomingMailServerUseSSL</key>{}
      <key>IncomingMailServerUsername</key><string>{login}</string>
      <key>OutgoingMailServerAuthentication</key><string>EmailAuthPassword</string>
      <key>OutgoingMailServerHostName</key><string>{host}</string>
      <key>OutgoingMailServerPortNumber</key><integer>{}</integer>
      <key>OutgoingMailServerUseSSL</key>{}
      <key>OutgoingMailServerUsername</key><string>{login}</string>
      <key>OutgoingPasswordSameAsIncomingPassword</key><true/>
      <key>PayloadDisplayName</key><string>{address}</string>
      <key>PayloadIdentifier</key><string>{host}.jmail.mail</string>
      <key>PayloadType</key><string>com.apple.mail.managed</string>
      <key>PayloadUUID</key><string>{}</string>
      <key>PayloadVersion</key><integer>1</integer>
    </dict>
  </array>
  <key>PayloadDisplayName</key><string>Mail for {address}</string>
  <key>PayloadIdentifier</key><string>{host}.jmail</string>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadUUID</key><string>{}</string>
  <key>PayloadVersion</key><integer>1</integer>
</dict>
</plist>
"#,
        incoming.port,
        b(incoming.implicit_tls),
        outgoing.port,
        b(outgoing.implicit_tls),
        uuid(1),
        uuid(2),
    ))
}
