//! Settings of one WhatsApp business number, built by the binary from the tenant config.

use std::fmt;

/// One WhatsApp Cloud API number.
#[derive(Clone)]
pub struct WhatsAppSettings {
    /// Tenant owning the number.
    pub tenant: String,
    /// Channel name in the tenant config.
    pub channel: String,
    /// Graph API access token (Bearer).
    pub access_token: String,
    /// App secret: key of the webhook HMAC.
    pub app_secret: String,
    /// Token echoed in the subscription handshake.
    pub verify_token: String,
    /// The number's `phone_number_id`.
    pub phone_number_id: String,
    /// Graph API base URL (`https://graph.facebook.com`).
    pub graph_url: String,
    /// Graph API version (`v21.0`).
    pub graph_version: String,
}

impl fmt::Debug for WhatsAppSettings {
    // Secrets never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppSettings")
            .field("tenant", &self.tenant)
            .field("channel", &self.channel)
            .field("phone_number_id", &self.phone_number_id)
            .field("graph_url", &self.graph_url)
            .field("graph_version", &self.graph_version)
            .finish_non_exhaustive()
    }
}
