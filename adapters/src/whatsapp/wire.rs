//! Serde shapes of the WhatsApp webhook, tolerant of fields Meta adds over time.

use serde::Deserialize;

#[derive(Deserialize)]
pub struct Envelope {
    pub object: Option<String>,
    #[serde(default)]
    pub entry: Vec<Entry>,
}

#[derive(Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Deserialize)]
pub struct Change {
    pub field: Option<String>,
    pub value: Option<Value>,
}

#[derive(Deserialize)]
pub struct Value {
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub contacts: Vec<ContactCard>,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub statuses: Vec<Status>,
}

#[derive(Deserialize)]
pub struct Metadata {
    pub phone_number_id: String,
}

#[derive(Deserialize)]
pub struct ContactCard {
    pub profile: Option<Profile>,
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Deserialize)]
pub struct Profile {
    pub name: Option<String>,
}

#[derive(Deserialize)]
pub struct Message {
    pub from: Option<String>,
    pub from_user_id: Option<String>,
    pub id: String,
    pub timestamp: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<Text>,
    pub interactive: Option<Interactive>,
    pub button: Option<Button>,
    pub image: Option<Media>,
    pub audio: Option<Media>,
    pub video: Option<Media>,
    pub document: Option<Media>,
    pub sticker: Option<Media>,
    pub location: Option<Location>,
    pub contacts: Option<Vec<SharedContact>>,
    pub reaction: Option<Reaction>,
}

#[derive(Deserialize)]
pub struct Text {
    pub body: String,
}

#[derive(Deserialize)]
pub struct Interactive {
    pub button_reply: Option<Reply>,
    pub list_reply: Option<Reply>,
}

#[derive(Deserialize)]
pub struct Reply {
    pub id: String,
    pub title: String,
}

#[derive(Deserialize)]
pub struct Button {
    pub payload: Option<String>,
    pub text: String,
}

#[derive(Deserialize)]
pub struct Media {
    pub id: String,
    pub mime_type: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
}

#[derive(Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Deserialize)]
pub struct SharedContact {
    pub name: Option<SharedName>,
}

#[derive(Deserialize)]
pub struct SharedName {
    pub formatted_name: Option<String>,
}

#[derive(Deserialize)]
pub struct Reaction {
    pub message_id: String,
    pub emoji: Option<String>,
}

#[derive(Deserialize)]
pub struct Status {
    pub id: String,
    pub status: String,
    pub recipient_id: Option<String>,
    #[serde(default)]
    pub errors: Vec<StatusError>,
}

#[derive(Deserialize)]
pub struct StatusError {
    pub code: Option<i64>,
    pub title: Option<String>,
}
