//! Where each provider delivers its webhooks: the paths CallPop serves and the public
//! addresses built from them (shown in Settings and Health, registered with RingCentral).

use crate::model::Provider;

/// Path of the RingCentral webhook.
pub const RINGCENTRAL_PATH: &str = "/api/v1/webhooks/phone_calls_webhooks/ringcentral";
/// Path of the Ringotel webhook.
pub const RINGOTEL_PATH: &str = "/api/v1/webhooks/phone_calls_webhooks/ringotel";

/// The webhook path of `provider`.
pub fn webhook_path(provider: Provider) -> &'static str {
    match provider {
        Provider::RingCentral => RINGCENTRAL_PATH,
        Provider::Ringotel => RINGOTEL_PATH,
    }
}

/// The address a provider must deliver to, given the public base URL (with or without a
/// trailing slash).
pub fn webhook_url(public_base: &str, provider: Provider) -> String {
    format!(
        "{}{}",
        public_base.trim_end_matches('/'),
        webhook_path(provider)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_has_one_slash_between_base_and_path() {
        assert_eq!(
            webhook_url("https://a.ngrok.app/", Provider::RingCentral),
            "https://a.ngrok.app/api/v1/webhooks/phone_calls_webhooks/ringcentral"
        );
        assert_eq!(
            webhook_url("https://calls.example.com", Provider::Ringotel),
            "https://calls.example.com/api/v1/webhooks/phone_calls_webhooks/ringotel"
        );
    }
}
