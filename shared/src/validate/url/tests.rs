//! The allow-list and the address classes over literal addresses and a static resolver: no
//! lookup or connection leaves this process.

use std::net::IpAddr;

use super::*;
use crate::validate::StaticResolver;

fn url(s: &str) -> WebhookUrl {
    WebhookUrl::parse(s).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn entries_match_scheme_host_port_and_whole_path_segments() {
    let a = AllowedUrls::parse("http://127.0.0.1:8080/hooks, https://hooks.example.com").unwrap();
    assert_eq!(a.admits(&url("http://127.0.0.1:8080/hooks")), Some(true));
    assert_eq!(
        a.admits(&url("http://127.0.0.1:8080/hooks/x?a=1")),
        Some(true)
    );
    assert_eq!(a.admits(&url("https://hooks.example.com/any")), Some(true));
    assert_eq!(a.admits(&url("https://hooks.example.com:443/")), Some(true));
    for refused in [
        "http://127.0.0.1:18080/hooks",
        "http://127.0.0.1:808/hooks",
        "http://127.0.0.1:8080/hooksevil",
        "http://127.0.0.1:8080/",
        "http://127.0.0.1:8080/hooks/../admin",
        "http://127.0.0.1:8080/hooks/%2e%2e/admin",
        "https://127.0.0.1:8080/hooks",
        "https://hooks.example.com.evil.net/",
        "https://hooks.example.com:8443/",
        "http://hooks.example.com/",
        "https://evilhooks.example.com/",
        "http://127.0.0.2:8080/hooks",
    ] {
        assert_eq!(a.admits(&url(refused)), None, "{refused}");
    }
    // The parser's normal form is what is judged: another spelling of the same address
    // is the same host.
    assert_eq!(a.admits(&url("http://2130706433:8080/hooks")), Some(true));
    assert!(WebhookUrl::parse("http://127.0.0.1:80800/hooks").is_err());
    assert_eq!(
        AllowedUrls::default().admits(&url("http://127.0.0.1/")),
        None
    );
}

#[test]
fn wildcards_admit_names_below_or_any_host_but_never_explicitly() {
    let a = AllowedUrls::parse("https://*.example.com/h, http://*:9000").unwrap();
    assert_eq!(a.admits(&url("https://a.example.com/h")), Some(false));
    assert_eq!(a.admits(&url("https://a.b.example.com/h/x")), Some(false));
    assert_eq!(a.admits(&url("https://example.com/h")), None);
    assert_eq!(a.admits(&url("https://aexample.com/h")), None);
    assert_eq!(a.admits(&url("https://1.2.3.4/h")), None);
    assert_eq!(a.admits(&url("http://localhost:9000/x")), Some(false));
    assert_eq!(a.admits(&url("http://127.0.0.1:9000/x")), Some(false));
}

#[test]
fn a_malformed_entry_is_refused_by_name() {
    for bad in [
        "127.0.0.1:80",
        "ftp://127.0.0.1/",
        "http://user@127.0.0.1/",
        "http://127.0.0.1/?q=1",
        "http://127.0.0.1/#f",
        "http://a.*.example.com/",
        "http://*evil.example.com/",
        "http://**.example.com/",
        "https://*.com/",
        "https://*.127.0.0.1/",
        "http://exa mple.com/",
    ] {
        let err = AllowedUrls::parse(&format!("http://ok.example/, {bad}")).unwrap_err();
        assert!(err.contains(bad), "{err}");
    }
    assert!(AllowedUrls::parse(" , ").unwrap().is_empty());
}

#[test]
fn urls_are_bounded_printable_ascii_without_user_info() {
    let long = format!("http://127.0.0.1/{}", "a".repeat(MAX_URL_BYTES));
    for bad in [
        long.as_str(),
        "http://127.0.0.1/a\nb",
        "http://127.0.0.1/a\tb",
        "http://127.0.0.1/a\u{7f}",
        "http://127.0.0.1/a b",
        "http://127.0.0.1/\u{202e}",
        "http://127.0.0.1/\u{200b}",
        "http://exämple.com/",
        "http://user@127.0.0.1/",
        "http://:pw@127.0.0.1/",
        "http://127.0.0.1/#frag",
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "http://",
        "not a url",
        "",
    ] {
        assert!(WebhookUrl::parse(bad).is_err(), "{bad:?}");
    }
    assert!(WebhookUrl::parse("https://xn--exmple-cua.com/h?token=1").is_ok());
}

#[test]
fn every_internal_range_is_classified() {
    let internal = [
        "127.0.0.1",
        "127.255.0.9",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.255",
        "192.0.0.8",
        "198.18.0.1",
        "::1",
        "fe80::1",
        "febf::1",
        "fc00::1",
        "fdff::1",
        "fec0::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",
        "2002:c0a8:101::1",
    ];
    for a in internal {
        assert!(
            matches!(classify(ip(a)), AddrClass::Internal(_)),
            "{a}: {:?}",
            classify(ip(a))
        );
    }
    for a in [
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "::",
        "ff02::1",
        "::ffff:0.0.0.0",
        "::ffff:224.0.0.1",
        "::127.0.0.1",
    ] {
        assert!(matches!(classify(ip(a)), AddrClass::Never(_)), "{a}");
    }
    for a in [
        "1.1.1.1",
        "8.8.8.8",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "169.253.1.1",
        "2606:4700::1111",
        "::ffff:1.1.1.1",
    ] {
        assert_eq!(classify(ip(a)), AddrClass::Public, "{a}");
    }
}

#[tokio::test]
async fn an_internal_address_is_refused_unless_the_host_is_named() {
    let r = StaticResolver::new()
        .with("localhost", [ip("127.0.0.1")])
        .with("rebind.example.com", [ip("93.184.216.34"), ip("10.0.0.1")])
        .with("pub.example.com", [ip("93.184.216.34")])
        .with("zero.example.com", [ip("0.0.0.0")]);
    let wild = AllowedUrls::parse("http://*:9000, https://*.example.com").unwrap();
    let err = wild
        .pin(&url("http://localhost:9000/"), &r)
        .await
        .unwrap_err();
    assert!(err.contains("loopback"), "{err}");
    let err = wild
        .pin(&url("http://127.0.0.1:9000/"), &r)
        .await
        .unwrap_err();
    assert!(err.contains("loopback"), "{err}");
    let err = wild
        .pin(&url("https://rebind.example.com/"), &r)
        .await
        .unwrap_err();
    assert!(err.contains("private"), "{err}");
    let err = wild
        .pin(&url("https://nowhere.example.com/"), &r)
        .await
        .unwrap_err();
    assert!(err.contains("did not resolve"), "{err}");
    let ok = wild
        .pin(&url("https://pub.example.com/"), &r)
        .await
        .unwrap();
    assert_eq!(ok.name.as_deref(), Some("pub.example.com"));
    assert_eq!(ok.addrs, vec!["93.184.216.34:443".parse().unwrap()]);

    let named =
        AllowedUrls::parse("http://localhost:9000, http://127.0.0.1:9001, http://zero.example.com")
            .unwrap();
    let ok = named.pin(&url("http://localhost:9000/"), &r).await.unwrap();
    assert_eq!(ok.addrs, vec!["127.0.0.1:9000".parse().unwrap()]);
    let ok = named.pin(&url("http://127.0.0.1:9001/"), &r).await.unwrap();
    assert_eq!(ok.name, None);
    let err = named
        .pin(&url("http://zero.example.com/"), &r)
        .await
        .unwrap_err();
    assert!(err.contains("unspecified"), "{err}");
    let err = named
        .pin(&url("http://localhost:9002/"), &r)
        .await
        .unwrap_err();
    assert!(err.contains("no longer allowed"), "{err}");
}
