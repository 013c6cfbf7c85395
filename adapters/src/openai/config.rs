//! Settings of the OpenAI-compatible model endpoint, built by the binary from the config.

use std::fmt;

/// The public OpenAI API.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// One OpenAI-compatible chat-completions endpoint and the model options sent with each call.
#[derive(Clone)]
pub struct OpenAiSettings {
    /// API base including the version path (`https://api.openai.com/v1`); requests go to
    /// `{base_url}/chat/completions`.
    pub base_url: String,
    /// Bearer key; may be empty for local servers that do not check it.
    pub api_key: String,
    /// Model name (`gpt-4o-mini`).
    pub model: String,
    /// Upper bound on generated tokens, when set.
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature, when set (0 to 2).
    pub temperature: Option<f32>,
}

impl OpenAiSettings {
    /// Settings for the public API with default model options.
    pub fn new(api_key: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: api_key.into(),
            model: model.into(),
            max_completion_tokens: None,
            temperature: None,
        }
    }
}

impl fmt::Debug for OpenAiSettings {
    // The key is billed per token: it never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiSettings")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("max_completion_tokens", &self.max_completion_tokens)
            .field("temperature", &self.temperature)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let s = OpenAiSettings::new("sk-very-secret", "gpt-test");
        let printed = format!("{s:?}");
        assert!(printed.contains("gpt-test") && printed.contains(DEFAULT_BASE_URL));
        assert!(!printed.contains("sk-very-secret"), "{printed}");
    }
}
