use super::*;

fn file(entries: &str) -> String {
    entries.to_owned()
}

#[test]
fn a_listed_token_is_found_by_its_plaintext_and_nothing_else_is() {
    let token = generate_token().unwrap();
    let tenant = TenantId::parse("blue").unwrap();
    let set = TokenSet::parse(&entry_toml(
        "ci",
        &tenant,
        Scopes::parse_list("submit,read").unwrap(),
        &token,
    ))
    .unwrap();

    let found = set.find(&token).expect("found");
    assert_eq!(found.name, "ci");
    assert_eq!(found.tenant, tenant);
    assert!(found.scopes.allows(Scope::Submit) && found.scopes.allows(Scope::Read));
    assert!(!found.scopes.allows(Scope::Cancel));
    assert!(set.find("sq_wrong").is_none());
    assert!(set.find(&token[..token.len() - 1]).is_none());
    assert!(set.find("").is_none());
}

#[test]
fn generated_tokens_are_fresh_and_long() {
    let a = generate_token().unwrap();
    let b = generate_token().unwrap();
    assert_ne!(a, b);
    assert_eq!(a.len(), 3 + 64);
    assert!(a.starts_with("sq_"));
}

#[test]
fn admin_implies_every_scope() {
    let admin = Scopes::parse_list("admin").unwrap();
    assert!(Scope::ALL.iter().all(|s| admin.allows(*s)));
    assert!(admin.is_admin());
    assert!(!Scopes::parse_list("read").unwrap().is_admin());
}

#[test]
fn bad_entries_are_refused_with_the_entry_named() {
    let digest = hash_token("x");
    let cases = [
        (
            format!(
                "[[tokens]]\nname=\"a b\"\ntenant=\"t\"\nscopes=[\"read\"]\nsha256=\"{digest}\""
            ),
            "token name",
        ),
        (
            format!(
                "[[tokens]]\nname=\"a\"\ntenant=\"t/x\"\nscopes=[\"read\"]\nsha256=\"{digest}\""
            ),
            "tenant",
        ),
        (
            format!(
                "[[tokens]]\nname=\"a\"\ntenant=\"t\"\nscopes=[\"write\"]\nsha256=\"{digest}\""
            ),
            "unknown scope `write`",
        ),
        (
            format!("[[tokens]]\nname=\"a\"\ntenant=\"t\"\nscopes=[]\nsha256=\"{digest}\""),
            "at least one scope",
        ),
        (
            "[[tokens]]\nname=\"a\"\ntenant=\"t\"\nscopes=[\"read\"]\nsha256=\"abc\"".into(),
            "64 hex digits",
        ),
        (
            format!(
                "[[tokens]]\nname=\"a\"\ntenant=\"t\"\nscopes=[\"read\"]\nsha256=\"{digest}\"\ncolour=1"
            ),
            "unknown field",
        ),
        (
            format!(
                "[[tokens]]\nname=\"a\"\ntenant=\"t\"\nscopes=[\"read\"]\nsha256=\"{digest}\"\n\
                 [[tokens]]\nname=\"a\"\ntenant=\"u\"\nscopes=[\"read\"]\nsha256=\"{}\"",
                hash_token("y")
            ),
            "used twice",
        ),
        (
            format!(
                "[[tokens]]\nname=\"a\"\ntenant=\"t\"\nscopes=[\"read\"]\nsha256=\"{digest}\"\n\
                 [[tokens]]\nname=\"b\"\ntenant=\"u\"\nscopes=[\"read\"]\nsha256=\"{digest}\""
            ),
            "listed twice",
        ),
        ("[tenants.blue]\nmax_queued = 0".into(), "max_queued"),
        (
            "[tenants.blue]\nallowed_targets = []".into(),
            "allowed_targets must list 1 to 256",
        ),
        (
            "[tenants.blue]\nallowed_targets = [\"127.0.1.0/24\", \"nope/99\"]".into(),
            "[tenants.blue]: allowed targets entry `nope/99`",
        ),
        (
            format!(
                "[[tokens]]\nname=\"a\"\ntenant=\"t\"\nscopes=[\"read\"]\nsha256=\"{digest}\"\n\
                 allowed_targets = [\"300.1.1.1\"]"
            ),
            "token #1 (`a`): allowed targets entry `300.1.1.1`",
        ),
    ];
    for (text, expected) in cases {
        let err = TokenSet::parse(&file(&text)).unwrap_err();
        assert!(err.contains(expected), "{text}\n→ {err}");
    }
}

#[test]
fn errors_never_quote_the_file() {
    let token = generate_token().unwrap();
    for text in [
        format!("[[tokens]]\nname=\"a\"\ntenant=\"t\"\nscopes=[\"read\"]\nsha256=\"{token}\""),
        format!("[[tokens]]\nname=\"a\"\ntenant=\"t\"\nscopes=[\"read\"]\nsha256={token}"),
    ] {
        let err = TokenSet::parse(&text).unwrap_err();
        assert!(!err.contains(&token[3..20]), "{err}");
    }
}

#[test]
fn limits_come_from_the_entry_and_the_tenant_table() {
    let text = format!(
        "[[tokens]]\nname=\"a\"\ntenant=\"blue\"\nscopes=[\"read\"]\nsha256=\"{}\"\nrate_per_sec=2\n\
         [tenants.blue]\nmax_queued=3\n[tenants.green]\nmax_running=1\n",
        hash_token("tok")
    );
    let set = TokenSet::parse(&text).unwrap();
    let t = set.find("tok").unwrap();
    assert_eq!(
        t.rate,
        Some(Rate {
            per_sec: 2.0,
            burst: 4
        })
    );
    let blue = set.tenant_limits(&TenantId::parse("blue").unwrap());
    assert_eq!(blue.max_queued, Some(3));
    assert_eq!(
        set.tenants().into_iter().collect::<Vec<_>>(),
        ["blue", "green"].map(|t| TenantId::parse(t).unwrap())
    );
    assert_eq!(blue.max_running, None);
    assert_eq!(
        set.tenant_limits(&TenantId::parse("red").unwrap()),
        TenantLimits::default()
    );
}

#[test]
fn a_callers_scope_is_its_tenants_narrowing_then_its_tokens() {
    let text = format!(
        "[[tokens]]\nname=\"a\"\ntenant=\"blue\"\nscopes=[\"read\"]\nsha256=\"{}\"\n\
         allowed_targets=[\"127.0.1.0/28\"]\nrequire_engagement=true\n\
         [[tokens]]\nname=\"b\"\ntenant=\"blue\"\nscopes=[\"read\"]\nsha256=\"{}\"\n\
         [tenants.blue]\nallowed_targets=[\"127.0.1.0/24\"]\n",
        hash_token("ta"),
        hash_token("tb")
    );
    let set = TokenSet::parse(&text).unwrap();
    let blue = TenantId::parse("blue").unwrap();
    let a = set.caller_scope(&blue, set.find("ta"));
    let labels: Vec<&str> = a.narrowings.iter().map(|n| n.label()).collect();
    assert_eq!(labels, ["tenant blue", "token a"]);
    assert!(a.require_engagement);
    let b = set.caller_scope(&blue, set.find("tb"));
    assert_eq!(b.narrowings.len(), 1);
    assert!(!b.require_engagement);
    let red = set.caller_scope(&TenantId::parse("red").unwrap(), None);
    assert!(red.narrowings.is_empty());
}

#[test]
fn debug_output_never_shows_the_digest() {
    let set = TokenSet::parse(&format!(
        "[[tokens]]\nname=\"a\"\ntenant=\"t\"\nscopes=[\"read\"]\nsha256=\"{}\"",
        hash_token("tok")
    ))
    .unwrap();
    let dbg = format!("{:?}", set.find("tok").unwrap());
    assert!(!dbg.contains(&hash_token("tok")[..8]), "{dbg}");
}
