//! The web console's assets (`GET /console`), embedded in the binary. The console is a static page
//! that signs its calls to the public API with the signed-in access key, so it is authorized like
//! any SDK and needs no server state of its own.

/// The content type and body of a console asset, by request path.
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    Some(match path {
        "/console" | "/console/" | "/console/index.html" => (
            "text/html; charset=utf-8",
            include_str!("../console/index.html"),
        ),
        "/console/app.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../console/app.js"),
        ),
        "/console/sigv4.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../console/sigv4.js"),
        ),
        "/console/style.css" => (
            "text/css; charset=utf-8",
            include_str!("../console/style.css"),
        ),
        _ => return None,
    })
}
