//! The OpenAPI document, built from what [`crate::http::Routes`] records as it registers each
//! route, so that it covers exactly the routes the server answers and describes each answer as
//! it goes over the wire:
//!
//! - **Envelopes.** An answer's schema is its dialect's envelope around the route's data, the
//!   refusal envelope beside it: 000 and the admin API `{code, msg, status, data}` (refusals
//!   `status: false`, `data: []`), 001 `{code, msg, result}`, 003 `{code, msg, data}`, both with a
//!   non-zero `code` and a null payload when refused. These three refuse at HTTP 200, except 408
//!   and 429 (same envelope). 002 and the service routes answer the data itself, and 002 refuses
//!   at the error's HTTP status with `{error, message}`. Every route documents 405.
//! - **Component names are unique.** A Rust type's component keeps its own name unless another
//!   type shares it; then each is qualified with as much of its module path as tells them apart.
//!   Types nested in a request or answer are inlined into it.
//! - **Query parameters.** A GET route's fields are its query parameters.
//! - **Security.** Each route names what it authenticates with: the `bearer` session token, the
//!   `admin_key` header, or the 002 gateway's two headers (`gateway_consumer` with
//!   `gateway_secret`).

use std::collections::{BTreeMap, HashMap};

use actix_web::http::Method;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::dialect::Seed;

/// How a route wraps its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// 000 and the admin API.
    Gift,
    /// 001.
    Center,
    /// 002: the data itself; refusals at their HTTP status.
    Open,
    /// 003.
    Mini,
    /// The service routes: the data itself.
    Bare,
}

impl Envelope {
    /// The envelope of the dialect that serves `path`.
    pub fn of_path(path: &str) -> Self {
        match Seed::of_path(path) {
            Seed::Gift => Envelope::Gift,
            Seed::Center => Envelope::Center,
            Seed::Open => Envelope::Open,
            Seed::Mini => Envelope::Mini,
        }
    }
}

/// What a route authenticates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `Authorization: Bearer <session token>`.
    Bearer,
    /// `X-Admin-Key`.
    AdminKey,
    /// 002's `X-Consumer-Custom-ID` with `X-Gateway-Secret`.
    Gateway,
}

impl Auth {
    /// What a route at `path` whose handler takes the extractors `Args` authenticates with:
    /// 002 routes check the gateway headers themselves; elsewhere the extractor says.
    pub fn of_route<Args>(path: &str) -> Self {
        let extractors = std::any::type_name::<Args>();
        if Seed::of_path(path) == Seed::Open {
            Auth::Gateway
        } else if extractors.contains("::AdminKey<") {
            Auth::AdminKey
        } else if extractors.contains("::Caller<") {
            Auth::Bearer
        } else {
            Auth::None
        }
    }

    fn requirement(self) -> Option<Value> {
        match self {
            Auth::None => None,
            Auth::Bearer => Some(json!([{"bearer": []}])),
            Auth::AdminKey => Some(json!([{"admin_key": []}])),
            Auth::Gateway => Some(json!([{"gateway_consumer": [], "gateway_secret": []}])),
        }
    }
}

/// A Rust type as documented: its schema and the schemas of the types it refers to.
pub struct TypeDoc {
    /// The full Rust type name (unique), which picks the component name.
    rust: &'static str,
    schema: Value,
    nested: HashMap<String, Value>,
}

impl TypeDoc {
    pub fn of<T: ToSchema>() -> Self {
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        Self {
            rust: std::any::type_name::<T>(),
            schema: serde_json::to_value(T::schema()).unwrap_or(Value::Null),
            nested: nested
                .into_iter()
                .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or(Value::Null)))
                .collect(),
        }
    }

    /// The schema with every nested reference replaced by the schema it names.
    fn inlined(&self) -> Value {
        let mut schema = self.schema.clone();
        inline(&mut schema, &self.nested, &mut Vec::new());
        schema
    }

    fn is_empty(&self) -> bool {
        self.rust == std::any::type_name::<crate::http::Empty>()
    }
}

const REF_PREFIX: &str = "#/components/schemas/";

fn inline(value: &mut Value, nested: &HashMap<String, Value>, seen: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let target = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(REF_PREFIX))
                .map(str::to_string);
            if let Some(name) = target {
                if let Some(schema) = nested.get(&name).filter(|_| !seen.contains(&name)) {
                    let mut schema = schema.clone();
                    seen.push(name);
                    inline(&mut schema, nested, seen);
                    seen.pop();
                    // Keep what sits beside the reference (a description, say).
                    map.remove("$ref");
                    if let Value::Object(inner) = schema {
                        for (k, v) in inner {
                            map.entry(k).or_insert(v);
                        }
                    }
                }
                return;
            }
            for v in map.values_mut() {
                inline(v, nested, seen);
            }
        }
        Value::Array(items) => {
            for v in items {
                inline(v, nested, seen);
            }
        }
        _ => {}
    }
}

/// What a route answers with on success.
pub enum Output {
    /// JSON data in the route's envelope, with fields beside `data` (000) when `beside` is set.
    Json {
        data: TypeDoc,
        beside: Option<TypeDoc>,
    },
    /// A text body of this content type (CSV, Prometheus text, HTML).
    Text(&'static str),
}

/// One documented operation.
pub struct Operation {
    pub path: &'static str,
    pub method: Method,
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub envelope: Envelope,
    pub auth: Auth,
    pub input: TypeDoc,
    pub output: Output,
}

/// Operations and paths collected while registering routes.
#[derive(Default)]
pub struct ApiDoc {
    pub operations: Vec<Operation>,
    /// Every registered path with the methods it answers.
    pub methods: BTreeMap<String, Vec<Method>>,
}

impl ApiDoc {
    /// The OpenAPI 3.1 document.
    pub fn document(&self, description: &str) -> Value {
        let names = self.component_names();
        let mut components = Map::new();
        let mut register = |t: &TypeDoc| -> Value {
            let name = names[t.rust].clone();
            components
                .entry(name.clone())
                .or_insert_with(|| t.inlined());
            json!({"$ref": format!("{REF_PREFIX}{name}")})
        };
        let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        for op in &self.operations {
            let mut operation = Map::new();
            operation.insert("tags".into(), json!([op.tag]));
            operation.insert("summary".into(), json!(op.summary));
            operation.insert("description".into(), json!(op.description));
            operation.insert(
                "operationId".into(),
                json!(operation_id(&op.method, op.path)),
            );
            if let Some(security) = op.auth.requirement() {
                operation.insert("security".into(), security);
            }
            if !op.input.is_empty() {
                if op.method == Method::GET {
                    operation.insert("parameters".into(), query_parameters(&op.input.inlined()));
                } else {
                    let schema = register(&op.input);
                    operation.insert(
                        "requestBody".into(),
                        json!({"content": {
                            "application/json": {"schema": schema},
                            "application/x-www-form-urlencoded": {"schema": schema},
                        }}),
                    );
                }
            }
            let success = match &op.output {
                Output::Text(content_type) => json!({
                    "description": "The document",
                    "content": {*content_type: {"schema": {"type": "string"}}},
                }),
                Output::Json { data, beside } => {
                    let data = register(data);
                    let beside = beside.as_ref().map(TypeDoc::inlined);
                    json!({
                        "description": op.envelope.success_description(),
                        "content": {"application/json": {"schema":
                            op.envelope.success(data, beside.as_ref())}},
                    })
                }
            };
            let mut responses = Map::new();
            responses.insert("200".into(), success);
            for (status, response) in op.envelope.refusals() {
                responses.insert(status.into(), response);
            }
            if op.path == "/readyz" {
                responses.insert(
                    "503".into(),
                    json!({"description": "Not ready", "content": {"application/json":
                        {"schema": responses["200"]["content"]["application/json"]["schema"]}}}),
                );
            }
            responses.insert(
                "405".into(),
                json!({
                    "description": "The path answers other methods (listed in `Allow`)",
                    "headers": {"Allow": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": {"$ref": format!("{REF_PREFIX}Error")}}},
                }),
            );
            operation.insert("responses".into(), Value::Object(responses));
            paths
                .entry(op.path)
                .or_default()
                .insert(op.method.as_str().to_lowercase(), Value::Object(operation));
        }
        for (name, schema) in shared_schemas() {
            components.insert(name.into(), schema);
        }
        json!({
            "openapi": "3.1.0",
            "info": {
                "title": "points-engine",
                "version": env!("CARGO_PKG_VERSION"),
                "description": description,
            },
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer",
                        "description": "The session token a login answered."},
                    "admin_key": {"type": "apiKey", "in": "header", "name": "X-Admin-Key",
                        "description": "POINTS_ADMIN_KEY."},
                    "gateway_consumer": {"type": "apiKey", "in": "header",
                        "name": "X-Consumer-Custom-ID",
                        "description": "The caller, named by the API gateway (002)."},
                    "gateway_secret": {"type": "apiKey", "in": "header",
                        "name": "X-Gateway-Secret",
                        "description": "POINTS_GATEWAY_SECRET, proving the call came through the gateway (002)."},
                },
            },
        })
    }

    /// A unique component name for every documented type.
    fn component_names(&self) -> HashMap<&'static str, String> {
        let mut types: Vec<&'static str> = Vec::new();
        for op in &self.operations {
            types.push(op.input.rust);
            if let Output::Json { data, .. } = &op.output {
                types.push(data.rust);
            }
        }
        types.sort_unstable();
        types.dedup();
        let mut by_short: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
        for rust in types {
            by_short.entry(short_name(rust)).or_default().push(rust);
        }
        let mut names = HashMap::new();
        for (short, rusts) in by_short {
            if let [only] = rusts[..] {
                names.insert(only, short);
                continue;
            }
            for rust in &rusts {
                names.insert(*rust, qualified_name(rust, &rusts));
            }
        }
        names
    }
}

fn operation_id(method: &Method, path: &str) -> String {
    format!(
        "{}_{}",
        method.as_str().to_lowercase(),
        path.trim_matches('/').replace(['/', '.', '{', '}'], "_")
    )
}

/// `a::b::C<d::E>` as `C_E`.
fn short_name(rust: &str) -> String {
    let mut out = String::new();
    let mut segment = String::new();
    for c in rust.chars() {
        match c {
            ':' => segment.clear(),
            '<' | '>' | ',' | ' ' | '(' | ')' | '[' | ']' | ';' | '&' => {
                out.push_str(&segment);
                segment.clear();
                if c == '<' || c == ',' {
                    out.push('_');
                }
            }
            _ => segment.push(c),
        }
    }
    out.push_str(&segment);
    out
}

/// `rust`'s name qualified with the fewest trailing module segments that set it apart from
/// `others`; the whole path when they differ only inside type parameters.
fn qualified_name(rust: &str, others: &[&str]) -> String {
    let modules = |t: &str| -> Vec<String> {
        let outer = t.split('<').next().unwrap_or(t);
        let mut segs: Vec<String> = outer.split("::").map(str::to_string).collect();
        segs.pop();
        segs
    };
    let mine = modules(rust);
    let short = short_name(rust);
    for k in 1..=mine.len() {
        let label = |segs: &[String]| segs[segs.len().saturating_sub(k)..].join(".");
        let candidate = label(&mine);
        let clash = others
            .iter()
            .filter(|o| **o != rust)
            .any(|o| label(&modules(o)) == candidate);
        if !clash {
            return format!("{candidate}.{short}");
        }
    }
    rust.replace("::", ".")
        .replace(['<', ',', ' '], "_")
        .replace(['>', '&', '(', ')', '[', ']', ';'], "")
}

/// A GET route's fields, each as a query parameter.
fn query_parameters(schema: &Value) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    collect_fields(schema, &mut properties, &mut required);
    let params: Vec<Value> = properties
        .into_iter()
        .map(|(name, mut schema)| {
            // A query parameter is absent or a value, never null.
            not_null(&mut schema);
            let mut param = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name),
                "schema": schema,
            });
            if let Some(d) = schema.get("description") {
                param["description"] = d.clone();
            }
            param
        })
        .collect();
    Value::Array(params)
}

/// `schema` without its `null` alternative.
fn not_null(schema: &mut Value) {
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = &types[..] {
            let only = only.clone();
            schema["type"] = only;
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(Value::Array(options)) = schema.get_mut(key) {
            options.retain(|o| o.get("type").and_then(Value::as_str) != Some("null"));
            if let [only] = &options[..] {
                let only = only.clone();
                if let (Value::Object(target), Value::Object(only)) = (&mut *schema, only) {
                    target.remove(key);
                    target.extend(only);
                }
            }
        }
    }
}

/// The properties of an object schema, through `allOf` (flattened fields).
fn collect_fields(schema: &Value, properties: &mut Map<String, Value>, required: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            properties.insert(k.clone(), v.clone());
        }
    }
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        required.extend(req.iter().filter_map(Value::as_str).map(str::to_string));
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            collect_fields(part, properties, required);
        }
    }
}

impl Envelope {
    fn success_description(self) -> &'static str {
        match self {
            Envelope::Gift => {
                "The 000 envelope: `status: true`, `code` 200 and the data, or a refusal \
                 (`status: false`, the code of the error and `data: []`)."
            }
            Envelope::Center => {
                "The 001 envelope: `code` 0 and the `result`, or a refusal (the code of the \
                 error and `result: null`)."
            }
            Envelope::Mini => {
                "The 003 envelope: `code` 0 and the data, or a refusal (a negative or the \
                 route's own code and `data: null`)."
            }
            Envelope::Open | Envelope::Bare => "The answer",
        }
    }

    /// The success answer's schema, refusals beside it where they share the status.
    fn success(self, data: Value, beside: Option<&Value>) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        match self {
            Envelope::Open | Envelope::Bare => return data,
            Envelope::Gift => {
                properties.insert("code".into(), json!({"type": "integer", "enum": [200]}));
                properties.insert("msg".into(), json!({"type": "string"}));
                properties.insert("status".into(), json!({"type": "boolean", "enum": [true]}));
                properties.insert("data".into(), data);
                required.extend(["code", "msg", "status", "data"].map(String::from));
                if let Some(beside) = beside {
                    let mut more = Vec::new();
                    collect_fields(beside, &mut properties, &mut more);
                    required.extend(more);
                }
            }
            Envelope::Center => {
                properties.insert("code".into(), json!({"type": "integer", "enum": [0]}));
                properties.insert("msg".into(), json!({"type": "string"}));
                properties.insert("result".into(), data);
                required.extend(["code", "msg", "result"].map(String::from));
            }
            Envelope::Mini => {
                properties.insert("code".into(), json!({"type": "integer", "enum": [0]}));
                properties.insert("msg".into(), json!({"type": "string"}));
                properties.insert("data".into(), data);
                required.extend(["code", "msg", "data"].map(String::from));
            }
        }
        let success = json!({"type": "object", "required": required, "properties": properties});
        json!({"oneOf": [success, {"$ref": format!("{REF_PREFIX}{}", self.refusal_schema())}]})
    }

    fn refusal_schema(self) -> &'static str {
        match self {
            Envelope::Gift => "GiftRefusal",
            Envelope::Center => "CenterRefusal",
            Envelope::Mini => "MiniRefusal",
            Envelope::Open | Envelope::Bare => "Error",
        }
    }

    /// The refusals answered at another HTTP status than 200.
    fn refusals(self) -> Vec<(&'static str, Value)> {
        let refusal = |description: &str, retry_after: bool| {
            let mut response = json!({
                "description": description,
                "content": {"application/json": {"schema":
                    {"$ref": format!("{REF_PREFIX}{}", self.refusal_schema())}}},
            });
            if retry_after {
                response["headers"] = json!({"Retry-After": {
                    "description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer"},
                }});
            }
            response
        };
        match self {
            Envelope::Bare => Vec::new(),
            Envelope::Gift | Envelope::Center | Envelope::Mini => vec![
                ("408", refusal("The body did not arrive in time", false)),
                ("429", refusal("Rate limited", true)),
            ],
            Envelope::Open => vec![
                (
                    "400",
                    refusal("Bad input (`MISSING_FIELD`, `INVALID_ARGUMENT`)", false),
                ),
                ("401", refusal("Bad or missing gateway credentials", false)),
                (
                    "403",
                    refusal("The body names another user than the caller", false),
                ),
                ("404", refusal("Not found (an unknown event type)", false)),
                ("408", refusal("The body did not arrive in time", false)),
                (
                    "409",
                    refusal("The key was used before with other values", false),
                ),
                ("413", refusal("The body is too large", false)),
                ("422", refusal("Insufficient points", false)),
                (
                    "429",
                    refusal("Busy or rate limited (`RATE_LIMITED`)", true),
                ),
                ("501", refusal("Not configured", false)),
                ("502", refusal("A provider failed", false)),
                ("503", refusal("Storage unavailable", false)),
            ],
        }
    }
}

/// The refusal envelopes, shared by every route of their dialect.
fn shared_schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "GiftRefusal",
            json!({
                "type": "object",
                "description": "A 000 (and admin API) refusal.",
                "required": ["code", "msg", "status", "data"],
                "properties": {
                    "code": {"type": "integer", "description": "400 bad input, 401 credentials, 402 insufficient points, 403 another user, 404 not found, 409 conflict, 429 busy or limited, 503 unavailable, or the route's own code."},
                    "msg": {"type": "string", "description": "A sentence for the user, in Chinese."},
                    "status": {"type": "boolean", "enum": [false]},
                    "data": {"type": "array", "maxItems": 0},
                },
            }),
        ),
        (
            "CenterRefusal",
            json!({
                "type": "object",
                "description": "A 001 refusal.",
                "required": ["code", "msg", "result"],
                "properties": {
                    "code": {"type": "integer", "not": {"enum": [0]}, "description": "40000 bad input, 40100 credentials, 40300 another user, 40400 not found, 300013 insufficient points, 40900 conflict, 42900 busy or limited, 50300 unavailable."},
                    "msg": {"type": "string"},
                    "result": {"type": "null"},
                },
            }),
        ),
        (
            "MiniRefusal",
            json!({
                "type": "object",
                "description": "A 003 refusal.",
                "required": ["code", "msg", "data"],
                "properties": {
                    "code": {"type": "integer", "not": {"enum": [0]}, "description": "-1 missing field, -2 another user, -400 bad input, -401 credentials, -402 insufficient points, -404 not found, -409 conflict, -429 busy or limited, -503 unavailable, or the route's own code."},
                    "msg": {"type": "string"},
                    "data": {"type": "null"},
                },
            }),
        ),
        (
            "Error",
            json!({
                "type": "object",
                "description": "A refusal at its HTTP status (002, and 405 everywhere).",
                "required": ["error", "message"],
                "properties": {
                    "error": {"type": "string", "description": "A stable name, e.g. `INVALID_ARGUMENT`."},
                    "message": {"type": "string"},
                },
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_drop_module_paths() {
        assert_eq!(short_name("points_engine::facades::open::Mine"), "Mine");
        assert_eq!(
            short_name("alloc::vec::Vec<points_engine::store::EntryRow>"),
            "Vec_EntryRow"
        );
    }

    #[test]
    fn clashing_names_are_qualified_by_the_fewest_modules() {
        let all = [
            "points_engine::features::tasks::routes_gift::AppReq",
            "points_engine::features::signin::routes_gift::AppReq",
            "points_engine::facades::admin::AppReq",
        ];
        assert_eq!(qualified_name(all[2], &all), "admin.AppReq");
        assert_eq!(qualified_name(all[0], &all), "tasks.routes_gift.AppReq");
        assert_eq!(qualified_name(all[1], &all), "signin.routes_gift.AppReq");
    }

    #[test]
    fn routes_name_their_credentials() {
        type Admin = (crate::http::AdminKey<crate::dialect::Gift>,);
        type Token = (
            crate::http::Caller<crate::dialect::Mini>,
            actix_web::HttpRequest,
        );
        assert_eq!(Auth::of_route::<Admin>("/admin/apps"), Auth::AdminKey);
        assert_eq!(Auth::of_route::<Token>("/api/sign/"), Auth::Bearer);
        assert_eq!(
            Auth::of_route::<(actix_web::HttpRequest,)>("/v2/user/login.json"),
            Auth::None
        );
        assert_eq!(
            Auth::of_route::<(actix_web::HttpRequest,)>("/api/v1/open/swan/integral/points"),
            Auth::Gateway
        );
    }
}
