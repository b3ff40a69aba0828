//! Key store tests: states, aliases, blobs, rotation, root keys.

use super::*;

const SCOPE: Scope<'static> = Scope {
    account: "111122223333",
    region: "us-east-1",
};

fn root() -> RootKey {
    RootKey::from_bytes(&[9u8; 32])
}

#[test]
fn blobs_decrypt_without_a_key_id_and_only_in_their_context() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = Keys::open(&dir.path().join("kms.redb"), Some(root())).expect("open");
    let doc = keys
        .create_key(SCOPE, "d", None, Vec::new(), "CUSTOMER")
        .expect("create");
    let context = vec![("stream".to_owned(), "s".to_owned())];
    let (_, blob) = keys
        .encrypt(SCOPE, &doc.id, b"hello", &context)
        .expect("encrypt");
    let (owner, plain) = keys.decrypt(SCOPE, &blob, &context, None).expect("decrypt");
    assert_eq!(
        (owner.id.as_str(), plain.as_slice()),
        (doc.id.as_str(), &b"hello"[..])
    );
    assert!(matches!(
        keys.decrypt(SCOPE, &blob, &[], None),
        Err(KmsError::InvalidCiphertext)
    ));
    let mut flipped = blob.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(
        keys.decrypt(SCOPE, &flipped, &context, None),
        Err(KmsError::InvalidCiphertext)
    ));
}

#[test]
fn states_aliases_and_rotation_survive_reopening_with_the_root_key_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kms.redb");
    let (id, blob) = {
        let keys = Keys::open(&path, Some(root())).expect("open");
        let doc = keys
            .create_key(SCOPE, "d", None, Vec::new(), "CUSTOMER")
            .expect("create");
        keys.create_alias(SCOPE, "alias/orders", &doc.id)
            .expect("alias");
        let (_, blob) = keys
            .encrypt(SCOPE, "alias/orders", b"v0", &[])
            .expect("encrypt");
        keys.rotate(&doc.id, now_seconds()).expect("rotate");
        keys.update(SCOPE, &doc.id, |d| {
            d.state = "Disabled".into();
            Ok(())
        })
        .expect("disable");
        (doc.id, blob)
    };
    assert!(matches!(
        Keys::open(&path, Some(RootKey::from_bytes(&[1u8; 32]))),
        Err(KmsError::RootKey(_))
    ));
    let keys = Keys::open(&path, Some(root())).expect("reopen");
    assert!(matches!(
        keys.decrypt(SCOPE, &blob, &[], None),
        Err(KmsError::Disabled(_))
    ));
    keys.update(SCOPE, &id, |d| {
        d.state = "Enabled".into();
        Ok(())
    })
    .expect("enable");
    assert_eq!(
        keys.decrypt(SCOPE, &blob, &[], None)
            .expect("old version")
            .1,
        b"v0"
    );
    let (_, newer) = keys.encrypt(SCOPE, &id, b"v1", &[]).expect("encrypt");
    assert_eq!(blob::parse(&newer).expect("parse").version, 1);
    assert_eq!(keys.resolve(SCOPE, "alias/orders").expect("alias"), id);
    let new_root = RootKey::from_bytes(&[5u8; 32]);
    assert_eq!(keys.rewrap(&new_root).expect("rewrap"), 1);
    drop(keys);
    let keys = Keys::open(&path, Some(new_root)).expect("open with the new root key");
    assert_eq!(
        keys.decrypt(SCOPE, &newer, &[], None).expect("decrypt").1,
        b"v1"
    );
}

#[test]
fn the_kinesis_managed_key_appears_on_first_use_and_names_resolve_in_every_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = Keys::open(&dir.path().join("kms.redb"), Some(root())).expect("open");
    let id = keys.resolve(SCOPE, KINESIS_MANAGED_ALIAS).expect("managed");
    assert_eq!(
        keys.resolve(SCOPE, KINESIS_MANAGED_ALIAS).expect("again"),
        id
    );
    let doc = keys.describe(SCOPE, &id).expect("describe");
    assert_eq!(doc.manager, "AWS");
    assert_eq!(keys.resolve(SCOPE, &doc.arn()).expect("arn"), id);
    let alias_arn = "arn:aws:kms:us-east-1:111122223333:alias/aws/kinesis";
    assert_eq!(keys.resolve(SCOPE, alias_arn).expect("alias arn"), id);
    let other = Scope {
        account: "444455556666",
        region: "us-east-1",
    };
    assert!(matches!(
        keys.describe(other, &id),
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        keys.resolve(SCOPE, "nope"),
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        keys.create_alias(SCOPE, "alias/aws/mine", &id),
        Err(KmsError::NotAuthorized(_))
    ));
}
