//! DNS for mail: one resolver (hickory, through mail-auth, which checks SPF, DKIM and DMARC with it),
//! asking the configured name servers or the system's; and where mail for a domain goes (RFC 5321 §5).

use std::net::IpAddr;
use std::sync::Arc;

use mail_auth::common::cache::NoCache;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{MX, MessageAuthenticator, RecordSet};

use crate::config::Config;

/// Most MX hosts tried for one domain, and addresses for one host: a domain cannot make one delivery
/// open connections without end.
const MX_HOSTS_MAX: usize = 5;
const ADDRESSES_PER_HOST_MAX: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    #[error("cannot set up DNS: {0}")]
    Resolver(String),
}

/// Builds the resolver: the configured servers (UDP then TCP), else the system's.
pub fn authenticator(config: &Config) -> Result<Arc<MessageAuthenticator>, DnsSetupError> {
    let setup =
        |e: mail_auth::hickory_resolver::net::NetError| DnsSetupError::Resolver(e.to_string());
    if config.dns_servers.is_empty() {
        return MessageAuthenticator::new_system_conf()
            .map(Arc::new)
            .map_err(setup);
    }
    let mut resolver = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
    for server in &config.dns_servers {
        let mut ns = NameServerConfig::udp_and_tcp(server.ip());
        for c in &mut ns.connections {
            c.port = server.port();
        }
        resolver.add_name_server(ns);
    }
    let mut options = ResolverOpts::default();
    // Answers are cached by the resolver; tests change their zone between messages and the short
    // negative cache keeps a just-added record from being missed for long.
    options.negative_max_ttl = Some(std::time::Duration::from_secs(30));
    MessageAuthenticator::new(resolver, options)
        .map(Arc::new)
        .map_err(setup)
}

/// Why a domain has no route now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Try again later (a server failure, a timeout).
    Temporary(String),
    /// The domain does not exist or accepts no mail (RFC 7505's null MX).
    Permanent(String),
}

/// Whether `ip` is one any server on the internet could have: not loopback, private (RFC 1918,
/// IPv6 unique-local), link-local, shared (RFC 6598), unspecified, broadcast, multicast or
/// documentation. Mail for a domain routed to any other address is refused unless the config says
/// private addresses are fine ([`crate::config::FileConfig::outbound_private_addresses`]).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
                    || first == 0x2001 && v6.segments()[1] == 0x0db8)
            }
        },
    }
}

/// The hosts to try for `domain`, best first, each with its addresses: its MX hosts by preference
/// (equal ones in random order, RFC 5321 §5.1), or with no MX records the domain itself (its A/AAAA).
/// Unless `private_ok`, only public addresses ([`is_public`]): a domain whose hosts have none is
/// refused for good, so a user cannot make the queue connect into this host or its network.
pub async fn route(
    dns: &MessageAuthenticator,
    domain: &str,
    private_ok: bool,
) -> Result<Vec<(String, Vec<IpAddr>)>, RouteError> {
    let routes = all_routes(dns, domain).await?;
    if private_ok {
        return Ok(routes);
    }
    let public: Vec<(String, Vec<IpAddr>)> = routes
        .into_iter()
        .map(|(host, ips)| (host, ips.into_iter().filter(|ip| is_public(*ip)).collect()))
        .filter(|(_, ips): &(String, Vec<IpAddr>)| !ips.is_empty())
        .collect();
    match public.is_empty() {
        true => Err(RouteError::Permanent(format!(
            "{domain}: its mail servers are at no public address (loopback, private or link-local)"
        ))),
        false => Ok(public),
    }
}

async fn all_routes(
    dns: &MessageAuthenticator,
    domain: &str,
) -> Result<Vec<(String, Vec<IpAddr>)>, RouteError> {
    if let Some(ip) = super::address_literal(domain) {
        return Ok(vec![(ip.to_string(), vec![ip])]);
    }
    let mut hosts: Vec<String> = match dns
        .mx_lookup(domain, None::<&NoCache<Box<str>, RecordSet<MX>>>)
        .await
    {
        Ok(set) => {
            let mut hosts = Vec::new();
            for mx in set.rrset.iter() {
                let mut same: Vec<String> = mx.exchanges.iter().map(|h| h.to_string()).collect();
                shuffle(&mut same);
                hosts.extend(same);
            }
            if hosts.iter().any(|h| h.trim_end_matches('.').is_empty()) {
                return Err(RouteError::Permanent(format!(
                    "{domain} accepts no mail (null MX, RFC 7505)"
                )));
            }
            hosts
        }
        Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(ResponseCode::NXDomain))) => {
            return Err(RouteError::Permanent(format!("{domain}: no such domain")));
        }
        Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_))) => Vec::new(),
        Err(e) => return Err(RouteError::Temporary(format!("MX lookup of {domain}: {e}"))),
    };
    let implicit = hosts.is_empty();
    if implicit {
        hosts.push(domain.to_string());
    }
    hosts.truncate(MX_HOSTS_MAX);
    let mut routes = Vec::new();
    let mut temporary = None;
    for host in hosts {
        match addresses(dns, &host).await {
            Ok(ips) if !ips.is_empty() => {
                routes.push((host.trim_end_matches('.').to_string(), ips))
            }
            Ok(_) => {}
            Err(e) => temporary = Some(e),
        }
    }
    match (routes.is_empty(), temporary, implicit) {
        (false, _, _) => Ok(routes),
        (true, Some(e), _) => Err(RouteError::Temporary(e)),
        (true, None, true) => Err(RouteError::Permanent(format!(
            "{domain} has no MX and no address records"
        ))),
        (true, None, false) => Err(RouteError::Temporary(format!(
            "no MX host of {domain} has an address"
        ))),
    }
}

/// The route to a relay host (`host`, `host:port`, `ip:port`, `[ip]:port`): its name, addresses and port
/// (`default_port` when it names none).
pub async fn relay_route(
    dns: &MessageAuthenticator,
    relay: &str,
    default_port: u16,
) -> Result<(String, Vec<IpAddr>, u16), RouteError> {
    if let Ok(addr) = relay.parse::<std::net::SocketAddr>() {
        return Ok((addr.ip().to_string(), vec![addr.ip()], addr.port()));
    }
    let (host, port) = match relay.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse::<u16>() {
            Ok(port) => (h, port),
            Err(_) => (relay, default_port),
        },
        _ => (relay, default_port),
    };
    let host = host.trim_matches(['[', ']']);
    match addresses(dns, host).await {
        Ok(ips) if !ips.is_empty() => Ok((host.to_string(), ips, port)),
        Ok(_) => Err(RouteError::Temporary(format!(
            "the relay host {host} has no address"
        ))),
        Err(e) => Err(RouteError::Temporary(e)),
    }
}

/// A host's IPv4 then IPv6 addresses; not found is an empty list, other failures an error.
async fn addresses(dns: &MessageAuthenticator, host: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let mut ips = Vec::new();
    let mut failure = None;
    match dns
        .ipv4_lookup(
            host,
            None::<&NoCache<Box<str>, RecordSet<std::net::Ipv4Addr>>>,
        )
        .await
    {
        Ok(set) => ips.extend(set.rrset.iter().map(|ip| IpAddr::V4(*ip))),
        Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_))) => {}
        Err(e) => failure = Some(format!("A lookup of {host}: {e}")),
    }
    match dns
        .ipv6_lookup(
            host,
            None::<&NoCache<Box<str>, RecordSet<std::net::Ipv6Addr>>>,
        )
        .await
    {
        Ok(set) => ips.extend(set.rrset.iter().map(|ip| IpAddr::V6(*ip))),
        Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_))) => {}
        Err(e) => failure = failure.or(Some(format!("AAAA lookup of {host}: {e}"))),
    }
    ips.truncate(ADDRESSES_PER_HOST_MAX);
    match (ips.is_empty(), failure) {
        (true, Some(e)) => Err(e),
        _ => Ok(ips),
    }
}

fn shuffle(hosts: &mut [String]) {
    use rand::seq::SliceRandom;
    hosts.shuffle(&mut rand::thread_rng());
}
