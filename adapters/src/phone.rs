//! Phone numbers as contact keys. Brazilian mobiles exist with and without the ninth digit
//! (WhatsApp still reports many accounts as `55 DD 8-digit`), so both forms must be one contact.

/// Normalises a phone number (digits only) into the contact key: Brazilian mobile numbers get
/// their ninth digit (`55 11 87654321` → `55 11 987654321`); other numbers keep their digits.
pub fn contact_key(raw: &str) -> String {
    // A business-scoped user id (`US.1000…`) is already a stable key: keep it as it is.
    if raw.bytes().any(|b| b.is_ascii_alphabetic()) {
        return raw.to_owned();
    }
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    // 55 + 2-digit area code + 8-digit local number whose first digit marks a mobile (6-9).
    if digits.len() == 12 && digits.starts_with("55") && matches!(digits.as_bytes()[4], b'6'..=b'9') {
        return format!("{}9{}", &digits[..4], &digits[4..]);
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::contact_key;

    #[test]
    fn brazilian_mobiles_with_and_without_ninth_digit_are_one_contact() {
        assert_eq!(contact_key("5511987654321"), "5511987654321");
        assert_eq!(contact_key("551187654321"), "5511987654321");
        assert_eq!(contact_key("+55 (11) 8765-4321"), "5511987654321");
    }

    #[test]
    fn landlines_and_other_countries_are_untouched() {
        assert_eq!(contact_key("551133334444"), "551133334444", "landline starts with 2-5");
        assert_eq!(contact_key("15551234567"), "15551234567");
    }

    #[test]
    fn business_scoped_user_ids_are_kept_verbatim() {
        assert_eq!(contact_key("US.1000000000000001"), "US.1000000000000001");
    }
}
