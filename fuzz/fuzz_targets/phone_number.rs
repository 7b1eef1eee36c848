//! Number normalization on any text: never panics, and whatever it calls E.164 is E.164.
#![no_main]

use callpop_core::numbers::{Country, PhoneNumber};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    for iso in ["US", "AU", "GB", "NZ"] {
        let Some(country) = Country::from_iso(iso) else {
            continue;
        };
        let n = PhoneNumber::parse(raw, &country);
        if let Some(e164) = &n.e164 {
            assert!(e164.starts_with('+'), "{raw:?} → {e164:?}");
            assert!(
                e164[1..].bytes().all(|b| b.is_ascii_digit()),
                "{raw:?} → {e164:?}"
            );
            assert!((8..=16).contains(&e164.len()), "{raw:?} → {e164:?}");
            let _ = country.national_digits(e164);
        }
        let _ = n.search_digits(&country);
    }
});
