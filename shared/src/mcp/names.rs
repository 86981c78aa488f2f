//! The names the model knows MCP tools by, and the way back to each server's own name.
//!
//! Providers accept tool names of `[a-zA-Z0-9_-]`, at most 64 characters; MCP allows more (`.`
//! and `/` are common). A tool keeps its server's name where that is valid, else gets it
//! sanitised; only a name offered by two servers (or by one of the agent's own tools) is
//! prefixed with the server's name, so the common case reads exactly as the server wrote it.

use std::collections::{HashMap, HashSet};

/// The longest tool name every provider accepts.
pub const MAX_TOOL_NAME_CHARS: usize = 64;

/// The tools of one server, by the server's own names, for [`map_tool_names`].
#[derive(Debug, Clone, Copy)]
pub struct ServerTools<'a> {
    /// The server's name as configured.
    pub server: &'a str,
    /// The tools it lists, by its own names.
    pub tools: &'a [&'a str],
}

/// One MCP tool as offered to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRoute {
    /// The name the model calls it by.
    pub model_name: String,
    /// Which server offers it (by its configured name).
    pub server: String,
    /// The server's own name for it, for `tools/call`.
    pub tool: String,
}

/// The model's names for MCP tools, each with the way back to its server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolNames {
    routes: Vec<ToolRoute>,
    by_model_name: HashMap<String, usize>,
}

impl ToolNames {
    /// Every route, in the servers' order and then each server's.
    pub fn routes(&self) -> &[ToolRoute] {
        &self.routes
    }

    /// The route of the tool the model calls `model_name`.
    pub fn route(&self, model_name: &str) -> Option<&ToolRoute> {
        self.by_model_name
            .get(model_name)
            .map(|&index| &self.routes[index])
    }
}

/// Names every tool of `servers` for the model. `taken` are the names of the agent's own tools:
/// an MCP tool of the same name is prefixed with its server's name, and none is ever given one
/// of them. Names stay unique: a clash that remains (two names sanitised alike) gets `_2`, `_3`.
pub fn map_tool_names(servers: &[ServerTools<'_>], taken: &[&str]) -> ToolNames {
    let mut offered_by: HashMap<String, HashSet<&str>> = HashMap::new();
    for server in servers {
        for tool in server.tools {
            offered_by
                .entry(sanitize(tool))
                .or_default()
                .insert(server.server);
        }
    }
    let mut used: HashSet<String> = taken.iter().map(|name| (*name).to_owned()).collect();
    let mut names = ToolNames::default();
    for server in servers {
        for tool in server.tools {
            let plain = sanitize(tool);
            let shared = offered_by
                .get(&plain)
                .is_some_and(|offerers| offerers.len() > 1)
                || taken.contains(&plain.as_str());
            let wanted = if shared {
                sanitize(&format!("{}_{tool}", server.server))
            } else {
                plain
            };
            let model_name = unique(wanted, &used);
            used.insert(model_name.clone());
            names
                .by_model_name
                .insert(model_name.clone(), names.routes.len());
            names.routes.push(ToolRoute {
                model_name,
                server: server.server.to_owned(),
                tool: (*tool).to_owned(),
            });
        }
    }
    names
}

/// `name` with every character providers refuse replaced by `_`, cut to the longest they take.
pub fn sanitize(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TOOL_NAME_CHARS)
        .collect();
    if name.is_empty() {
        "tool".to_owned()
    } else {
        name
    }
}

/// `wanted`, or with the first `_N` suffix that is free (cutting `wanted` to keep 64 chars).
fn unique(wanted: String, used: &HashSet<String>) -> String {
    if !used.contains(&wanted) {
        return wanted;
    }
    (2..)
        .map(|n| {
            let suffix = format!("_{n}");
            // Sanitised names are ASCII: byte and character counts agree.
            let keep = wanted.len().min(MAX_TOOL_NAME_CHARS - suffix.len());
            format!("{}{suffix}", &wanted[..keep])
        })
        .find(|candidate| !used.contains(candidate))
        .unwrap_or(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(servers: &[(&str, &[&str])], taken: &[&str]) -> Vec<(String, String, String)> {
        let servers: Vec<ServerTools<'_>> = servers
            .iter()
            .map(|(server, tools)| ServerTools { server, tools })
            .collect();
        map_tool_names(&servers, taken)
            .routes()
            .iter()
            .map(|route| {
                (
                    route.model_name.clone(),
                    route.server.clone(),
                    route.tool.clone(),
                )
            })
            .collect()
    }

    fn route(model: &str, server: &str, tool: &str) -> (String, String, String) {
        (model.into(), server.into(), tool.into())
    }

    #[test]
    fn valid_names_are_kept_as_the_server_wrote_them() {
        assert_eq!(
            names(
                &[("everything", &["echo", "get-sum", "get_TINY_image2"])],
                &[]
            ),
            [
                route("echo", "everything", "echo"),
                route("get-sum", "everything", "get-sum"),
                route("get_TINY_image2", "everything", "get_TINY_image2"),
            ]
        );
    }

    #[test]
    fn invalid_characters_are_replaced_and_long_names_cut() {
        let long = "x".repeat(80);
        let got = names(
            &[("s", &["files.read", "repo/issues list", "", &long])],
            &[],
        );
        assert_eq!(got[0], route("files_read", "s", "files.read"));
        assert_eq!(got[1], route("repo_issues_list", "s", "repo/issues list"));
        assert_eq!(got[2], route("tool", "s", ""));
        assert_eq!(got[3].0, "x".repeat(64));
        assert_eq!(got[3].2, long);
        assert_eq!(sanitize("日本"), "__");
    }

    #[test]
    fn a_name_two_servers_offer_is_prefixed_on_both() {
        assert_eq!(
            names(
                &[("github", &["search", "issues"]), ("docs", &["search"])],
                &[]
            ),
            [
                route("github_search", "github", "search"),
                route("issues", "github", "issues"),
                route("docs_search", "docs", "search"),
            ]
        );
    }

    #[test]
    fn names_that_sanitise_alike_across_servers_count_as_the_same() {
        assert_eq!(
            names(&[("a", &["read.file"]), ("b", &["read/file"])], &[]),
            [
                route("a_read_file", "a", "read.file"),
                route("b_read_file", "b", "read/file"),
            ]
        );
    }

    #[test]
    fn the_agents_own_tools_keep_their_names() {
        assert_eq!(
            names(&[("calc", &["add", "weather"])], &["weather"]),
            [
                route("add", "calc", "add"),
                route("calc_weather", "calc", "weather"),
            ]
        );
    }

    #[test]
    fn clashes_within_one_server_get_a_number() {
        assert_eq!(
            names(&[("s", &["a.b", "a/b", "a_b"])], &[]),
            [
                route("a_b", "s", "a.b"),
                route("a_b_2", "s", "a/b"),
                route("a_b_3", "s", "a_b"),
            ]
        );
        let long = "y".repeat(64);
        let long_dotted = format!("{long}.");
        let got = names(&[("s", &[&long, &long_dotted])], &[]);
        assert_eq!(got[1].0, format!("{}_2", "y".repeat(62)));
    }

    #[test]
    fn a_prefixed_name_that_would_be_too_long_is_cut() {
        let long = "z".repeat(60);
        let got = names(&[("server", &[&long]), ("other", &[&long])], &[]);
        assert_eq!(got[0].0, format!("server_{}", "z".repeat(57)));
        assert_eq!(got[0].0.len(), MAX_TOOL_NAME_CHARS);
        assert_eq!(got[1].0, format!("other_{}", "z".repeat(58)));
    }

    #[test]
    fn routes_lead_back_from_the_models_name() {
        let servers = [
            ServerTools {
                server: "github",
                tools: &["search"],
            },
            ServerTools {
                server: "docs",
                tools: &["search", "pages.get"],
            },
        ];
        let names = map_tool_names(&servers, &[]);
        let route = names.route("docs_search").expect("routed");
        assert_eq!(
            (route.server.as_str(), route.tool.as_str()),
            ("docs", "search")
        );
        let route = names.route("pages_get").expect("routed");
        assert_eq!(route.tool, "pages.get");
        assert_eq!(names.route("search"), None);
        assert_eq!(names.route("pages.get"), None);
    }
}
