//! `nextLink` paging: 100 items a page unless `$top` says otherwise, absolute links carrying
//! `$skipToken`, no link on the last page.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::Value;

use crate::common::*;

async fn app_with_groups(n: usize) -> (TestApp, String, BTreeSet<String>) {
    let app = TestApp::new().await;
    let token = app.token().await;
    let mut names = BTreeSet::new();
    for i in 0..n {
        let name = format!("page-rg-{i:03}");
        let (status, body) = app.put_group(&token, &name, "westus2").await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        names.insert(name);
    }
    (app, token, names)
}

fn names_of(page: &Value) -> Vec<String> {
    page["value"]
        .as_array()
        .unwrap_or_else(|| panic!("no value array in {page}"))
        .iter()
        .map(|g| g["name"].as_str().expect("name").to_owned())
        .collect()
}

/// Checks a nextLink's shape and returns the path to GET.
fn next_path(link: &Value, skip: usize, top: Option<&str>) -> String {
    let link = link.as_str().unwrap_or_else(|| panic!("nextLink is not a string: {link}"));
    let prefix = format!("https://{HOST}/subscriptions/{}/resourcegroups?", sub_id());
    assert!(link.starts_with(&prefix), "{link} is not absolute");
    let query = query_pairs(link);
    let get = |name: &str| query.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    assert_eq!(get("$skipToken"), vec![skip.to_string()], "{link}");
    assert_eq!(get("api-version"), vec![RG_API], "{link}");
    assert_eq!(get("$top"), top.into_iter().collect::<Vec<_>>(), "{link}");
    path_of(link)
}

#[tokio::test]
async fn lists_page_by_100_with_an_absolute_next_link() {
    let (app, token, names) = app_with_groups(150).await;
    let (status, first) =
        app.get(&format!("/subscriptions/{}/resourcegroups?api-version={RG_API}", sub_id()), &token).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let first_names = names_of(&first);
    assert_eq!(first_names.len(), 100);
    let path = next_path(&first["nextLink"], 100, None);

    let (status, second) = app.get(&path, &token).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second_names = names_of(&second);
    assert_eq!(second_names.len(), 50);
    assert!(second.get("nextLink").is_none_or(Value::is_null), "the last page has no nextLink: {}", second["nextLink"]);
    let seen: BTreeSet<String> = first_names.into_iter().chain(second_names).collect();
    assert_eq!(seen, names, "the pages hold every group exactly once");
}

#[tokio::test]
async fn top_sets_the_page_size_and_survives_into_next_links() {
    let (app, token, names) = app_with_groups(35).await;
    let mut path = format!("/subscriptions/{}/resourcegroups?api-version={RG_API}&$top=10", sub_id());
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let (status, page) = app.get(&path, &token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        let page_names = names_of(&page);
        sizes.push(page_names.len());
        seen.extend(page_names);
        match page.get("nextLink").filter(|l| !l.is_null()) {
            Some(link) => path = next_path(link, seen.len(), Some("10")),
            None => break,
        }
        assert!(sizes.len() < 10, "paging does not end");
    }
    assert_eq!(sizes, vec![10, 10, 10, 5]);
    assert_eq!(seen.len(), names.len(), "no repeats");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), names);
}

#[tokio::test]
async fn bad_paging_parameters_are_400_not_500() {
    let (app, token, _) = app_with_groups(3).await;
    let base = format!("/subscriptions/{}/resourcegroups?api-version={RG_API}", sub_id());
    for (query, message) in [
        ("&$skipToken=not-a-token", "The provided $skipToken 'not-a-token' is invalid."),
        ("&$skipToken=-1", "The provided $skipToken '-1' is invalid."),
        ("&$top=0", "The value '0' of query parameter '$top' is invalid."),
        ("&$top=ten", "The value 'ten' of query parameter '$top' is invalid."),
    ] {
        let (status, body) = app.get(&format!("{base}{query}"), &token).await;
        let got = assert_arm_error(status, &body, StatusCode::BAD_REQUEST, "BadRequest");
        assert_eq!(got, message, "{query}");
    }
    // A token past the end is an empty last page.
    let (status, body) = app.get(&format!("{base}&$skipToken=500"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names_of(&body), Vec::<String>::new());
    assert!(body.get("nextLink").is_none());
}
