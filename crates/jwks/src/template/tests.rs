//! Start-time and per-token template rules, without the network (the fetching side of the
//! same rules is in `tests/tenants.rs`).

use super::*;

const ISS: &str = r"^https://idp\.example\.com/(?P<tenant>acme|globex)$";
const EP: &str = "https://keys.example.com/{{tenant}}/jwks.json";

fn refused(template: &str, iss: &str, aud: &str) -> JwksConfigError {
    match validate_template(template, iss, aud) {
        Ok(t) => panic!("{template:?} / {iss:?} / {aud:?} accepted: {:?}", t.urls()),
        Err(e) => e,
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

#[test]
fn static_endpoint_is_one_url_and_ignores_claims() {
    let t = validate_template("https://idp.example.com/.well-known/jwks.json", ISS, "").unwrap();
    assert!(!t.is_dynamic());
    assert_eq!(t.urls().len(), 1);
    let url = t.resolve(Some("anything at all"), &[]).unwrap();
    assert_eq!(
        url.as_str(),
        "https://idp.example.com/.well-known/jwks.json"
    );
    assert_eq!(t.resolve(None, &[]).unwrap(), url);
}

#[test]
fn endpoint_must_be_a_plain_http_url() {
    for (ep, why) in [
        ("ftp://idp.example.com/jwks", "http"),
        ("file:///etc/passwd", "http"),
        ("idp.example.com/jwks", "not a URL"),
        ("https://user:pw@idp.example.com/jwks", "user info"),
        ("https://idp.example.com/jwks#frag", "fragment"),
        ("https://idp.example.com//jwks", "clean"),
        ("https://idp.example.com/a/../jwks", "clean"),
        ("https://idp.example.com/./jwks", "clean"),
    ] {
        let e = refused(ep, "", "");
        assert_eq!(e.setting, Setting::Endpoint, "{ep}");
        assert!(e.problem.contains(why), "{ep}: {e}");
    }
    // A trailing slash is fine (Centrifugo 6.7+ refuses every fetch for it).
    validate_template("https://idp.example.com/jwks/", "", "").unwrap();
}

#[test]
fn literal_lists_are_accepted_and_enumerated() {
    let t = validate_template(EP, ISS, "").unwrap();
    assert!(t.is_dynamic());
    let urls: Vec<&str> = t.urls().iter().map(Url::as_str).collect();
    assert_eq!(
        urls,
        [
            "https://keys.example.com/acme/jwks.json",
            "https://keys.example.com/globex/jwks.json"
        ]
    );
    // Concatenations of alternations, nested and non-capturing groups, escaped literals.
    let t = validate_template(
        "https://{{region}}.keys.example.com/{{tenant}}",
        r"^https://idp\.example\.com/(?P<tenant>(?:acme|globex)(?:-eu|-us))/(?P<region>eu\.1|us\.2)$",
        "",
    )
    .unwrap();
    assert_eq!(t.urls().len(), 8);
    let url = t
        .resolve(Some("https://idp.example.com/globex-us/us.2"), &[])
        .unwrap();
    assert_eq!(url.as_str(), "https://us.2.keys.example.com/globex-us");
    // Classes elsewhere in the gate regex never reach the URL: accepted (Centrifugo refuses).
    validate_template(
        EP,
        r"^https://[a-z]+\.example\.com/(?P<tenant>acme|globex)$",
        "",
    )
    .unwrap();
}

#[test]
fn non_literal_groups_refuse_to_start_naming_the_setting() {
    for (iss, what) in [
        (r"(?P<tenant>.+)", "repetition"),
        (r"(?P<tenant>acme|.)", "any character"),
        (r"^https://idp/(?P<tenant>[a-z]+)$", "repetition"),
        (r"^https://idp/(?P<tenant>[a-z])$", "class"),
        (r"(?P<tenant>\w)", "class"),
        (r"(?P<tenant>acme|.*)", "repetition"),
        (r"(?P<tenant>acmes?)", "repetition"),
        (r"(?P<tenant>acme$)", "assertion"),
        (r"(?P<tenant>(?s:acme))", "flags"),
        (r"(?P<tenant>\pL)", "class"),
    ] {
        let e = refused(EP, iss, "");
        assert_eq!(e.setting, Setting::IssuerRegex, "{iss}");
        assert!(
            e.problem.contains("fixed list of literal alternatives"),
            "{iss}: {e}"
        );
        assert!(e.problem.contains(what), "{iss}: {e}");
    }
    // The audience regex is checked the same way and named as such.
    let e = refused(EP, "", r"^tenant-(?P<tenant>.*)$");
    assert_eq!(e.setting, Setting::AudienceRegex);
}

#[test]
fn unsafe_alternatives_refuse_to_start() {
    for iss in [
        r"(?P<tenant>acme|)",
        r"(?P<tenant>acme|evil\.com/x)",
        r"(?P<tenant>acme|a\?b)",
        r"(?P<tenant>acme|a#b)",
        r"(?P<tenant>acme|a@b)",
        r"(?P<tenant>acme|a%2Fb)",
        r"(?P<tenant>acme|\.\.)",
        r"(?P<tenant>acme|a b)",
        r"(?P<tenant>acme|a\x2Fb)",
        r"(?P<tenant>acme|a\nb)",
        r"(?P<tenant>acme|a:80)",
        r"(?P<tenant>acme|ä)",
    ] {
        let e = refused(EP, iss, "");
        assert_eq!(e.setting, Setting::IssuerRegex, "{iss}");
        assert!(e.problem.contains("cannot go into a URL"), "{iss}: {e}");
    }
}

#[test]
fn case_insensitive_flag_is_refused_for_template_groups() {
    for iss in [
        r"(?i)(?P<tenant>acme)",
        r"(?i:x(?P<tenant>acme))",
        r"(?P<tenant>acme)(?i)x",
    ] {
        let e = refused(EP, iss, "");
        assert!(e.problem.contains("case-insensitive"), "{iss}: {e}");
    }
    // Without placeholders the regexes are plain gates: any pattern is the verifier's business.
    validate_template("https://idp.example.com/jwks", r"(?i)(?P<tenant>.+)", "").unwrap();
}

#[test]
fn placeholders_must_be_well_formed_and_filled() {
    let e = refused("https://keys.example.com/{{tenant}}/{{region}}", ISS, "");
    assert_eq!(e.setting, Setting::Endpoint);
    assert!(e.problem.contains("{{region}}"), "{e}");
    for ep in [
        "https://keys.example.com/{{tenant",
        "https://keys.example.com/{{ tenant }}",
        "https://keys.example.com/{{}}",
        "https://keys.example.com/{{1x}}",
        "https://keys.example.com/}}{{tenant}}",
        "https://keys.example.com/{{tenant}}}}",
    ] {
        assert_eq!(refused(ep, ISS, "").setting, Setting::Endpoint, "{ep}");
    }
    // A regex that does not compile is named.
    assert_eq!(
        refused(EP, "(?P<tenant>acme", "").setting,
        Setting::IssuerRegex
    );
    assert_eq!(refused(EP, ISS, "(").setting, Setting::AudienceRegex);
    // Go's \Q...\E is not Rust syntax: a start error, not a silent difference.
    assert_eq!(
        refused(EP, r"\Qa.b\E(?P<tenant>acme)", "").setting,
        Setting::IssuerRegex
    );
}

#[test]
fn too_many_endpoints_refuse_to_start() {
    let alts: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
    let iss = format!("(?P<a>{})/(?P<b>{})", alts.join("|"), alts.join("|"));
    let e = refused("https://keys.example.com/{{a}}/{{b}}", &iss, "");
    assert!(e.problem.contains("more than"), "{e}");
}

#[test]
fn resolve_only_ever_yields_listed_urls() {
    let t = validate_template(EP, ISS, "").unwrap();
    let acme = t
        .resolve(Some("https://idp.example.com/acme"), &[])
        .unwrap();
    assert_eq!(acme.as_str(), "https://keys.example.com/acme/jwks.json");
    assert_eq!(t.resolve(None, &[]), Err(ResolveError::NoIssuer));
    for iss in [
        "https://idp.example.com/evil",
        "https://idp.example.com/acme/../../admin",
        "https://idp.example.com/ACME",
        "https://idp.example.com/acme\n",
        "http://169.254.169.254/latest/meta-data",
    ] {
        assert_eq!(
            t.resolve(Some(iss), &[]),
            Err(ResolveError::IssuerMismatch),
            "{iss:?}"
        );
    }
    // An unanchored gate matches inside hostile text, but only a listed literal is captured.
    let t = validate_template(EP, r"idp/(?P<tenant>acme|globex)", "").unwrap();
    let url = t
        .resolve(Some("http://evil.example/idp/acme@169.254.169.254/x"), &[])
        .unwrap();
    assert_eq!(url.as_str(), "https://keys.example.com/acme/jwks.json");
}

#[test]
fn audience_groups_fill_and_override() {
    let t = validate_template(EP, "", r"^tenant-(?P<tenant>acme|globex)$").unwrap();
    let url = t
        .resolve(None, &s(&["rotor", "tenant-globex", "tenant-acme"]))
        .unwrap();
    assert_eq!(url.as_str(), "https://keys.example.com/globex/jwks.json");
    assert_eq!(
        t.resolve(None, &s(&["rotor"])),
        Err(ResolveError::AudienceMismatch)
    );
    assert_eq!(t.resolve(None, &[]), Err(ResolveError::AudienceMismatch));
    // Both regexes name the group: the audience value wins; both gates must match.
    let t = validate_template(EP, ISS, r"^tenant-(?P<tenant>acme|globex)$").unwrap();
    let url = t
        .resolve(Some("https://idp.example.com/acme"), &s(&["tenant-globex"]))
        .unwrap();
    assert_eq!(url.as_str(), "https://keys.example.com/globex/jwks.json");
    assert_eq!(
        t.resolve(Some("https://idp.example.com/evil"), &s(&["tenant-globex"])),
        Err(ResolveError::IssuerMismatch)
    );
}

#[test]
fn an_optional_group_that_did_not_match_has_no_value() {
    let t = validate_template(
        "https://keys.example.com/{{tenant}}",
        r"^https://idp\.example\.com/(?:(?P<tenant>acme|globex)|other)$",
        "",
    )
    .unwrap();
    assert_eq!(
        t.resolve(Some("https://idp.example.com/other"), &[]),
        Err(ResolveError::MissingValue("tenant".into()))
    );
}
