//! Parsing the options and the function, and writing the expansion.
//!
//! Both attributes share one path: [`expand`] parses the options ([`Options::parse`]),
//! checks the function ([`check_signature`]), settles the runtime configuration
//! ([`Options::resolve`]) and writes a synchronous function of the same name whose body
//! builds the runtime and blocks on the original `async fn`, kept as an inner item:
//!
//! ```text
//! #[::core::prelude::v1::test]        // #[ringleader::test] only
//! #(user attributes)*
//! fn name() -> R {
//!     async fn name() -> R { user body }
//!     ::ringleader::runtime::Builder::new_current_thread()
//!         .start_paused(true)          // each option given, nothing else
//!         .build()
//!         .expect("failed to build the ringleader runtime")
//!         .block_on(name())
//! }
//! ```
//!
//! `#[ringleader::main]` ends instead in `::ringleader::__main(builder, name())`, which builds
//! the runtime the same way and adds `ringleader::run`'s Ctrl-C handling.
//!
//! The inner `async fn` (rather than an `async` block) keeps the user's signature as written:
//! `return`, `?` and a mismatched return type are checked and reported exactly as in any
//! `async fn`, at the user's spans.
//!
//! On any error the expansion is the errors plus a synchronous stub of the same name and
//! return type, so that one mistake gives one message (no "`main` function not found" or
//! "`main` is not allowed to be `async`" after it).

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, LitStr, Path};

/// Which attribute is being expanded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Main,
    Test,
}

impl Kind {
    /// The attribute as users write it, for messages.
    fn attribute(self) -> &'static str {
        match self {
            Kind::Main => "#[ringleader::main]",
            Kind::Test => "#[ringleader::test]",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    MultiThread,
    CurrentThread,
}

/// The options as written.
#[derive(Default)]
struct Options {
    flavor: Option<Flavor>,
    /// With the span of the option's name.
    worker_threads: Option<(usize, Span)>,
    start_paused: Option<bool>,
    debug: Option<bool>,
    crate_path: Option<Path>,
}

/// The runtime to build, after defaults and consistency checks.
struct Config {
    flavor: Flavor,
    worker_threads: Option<usize>,
    start_paused: Option<bool>,
    debug: Option<bool>,
    crate_path: Path,
}

const OPTIONS: &str = "`flavor`, `worker_threads`, `start_paused`, `debug` or `crate`";

/// Expands `#[ringleader::main]` or `#[ringleader::test]`.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(e) => {
            let e = syn::Error::new(
                e.span(),
                format!("{} applies to an `async fn` only ({e})", kind.attribute()),
            );
            // Keep the item so that the rest of the crate still resolves.
            let mut out = e.to_compile_error();
            out.extend(item);
            return out;
        }
    };
    let config = Options::parse(kind, args).and_then(|options| options.resolve(kind));
    let signature = check_signature(kind, &function);
    let errors = match (config, signature) {
        (Ok(config), Ok(())) => return write(kind, &config, function),
        (Err(mut a), Err(b)) => {
            a.combine(b);
            a
        }
        (Err(e), Ok(())) | (Ok(_), Err(e)) => e,
    };
    let mut out = errors.to_compile_error();
    out.extend(stub(&function));
    out
}

impl Options {
    fn parse(kind: Kind, args: TokenStream) -> syn::Result<Options> {
        let mut options = Options::default();
        let parser = syn::meta::parser(|meta| options.option(kind, meta));
        parser.parse2(args)?;
        Ok(options)
    }

    /// Parses one `name = value`.
    fn option(&mut self, kind: Kind, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let name = match meta.path.get_ident() {
            Some(ident) => ident.to_string(),
            None => {
                let path: Vec<String> = meta
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect();
                return Err(meta.error(format!(
                    "unknown option `{}`: {} takes {OPTIONS}",
                    path.join("::"),
                    kind.attribute()
                )));
            }
        };
        let example = match name.as_str() {
            "flavor" => "flavor = \"current_thread\"",
            "worker_threads" => "worker_threads = 2",
            "start_paused" => "start_paused = true",
            "debug" => "debug = true",
            "crate" => "crate = \"ringleader\"",
            _ => {
                return Err(meta.error(format!(
                    "unknown option `{name}`: {} takes {OPTIONS}",
                    kind.attribute()
                )))
            }
        };
        if !meta.input.peek(syn::Token![=]) {
            return Err(meta.error(format!("`{name}` needs a value: write `{example}`")));
        }
        let value: Expr = meta.value()?.parse()?;
        // `new_spanned` covers the whole value (`1 + 1`), where a `Span` would stop at its
        // first token on stable.
        let at_value = |message: String| syn::Error::new_spanned(&value, message);
        let wrong = |what: &str| at_value(format!("`{name}` takes {what}, as in `{example}`"));
        let repeated = || syn::Error::new(meta.path.span(), format!("`{name}` is given twice"));
        match name.as_str() {
            "flavor" => {
                let Some(Lit::Str(s)) = literal(&value) else {
                    return Err(wrong("a string"));
                };
                let flavor = match s.value().as_str() {
                    "multi_thread" => Flavor::MultiThread,
                    "current_thread" => Flavor::CurrentThread,
                    other => {
                        return Err(at_value(format!(
                            "unknown flavor `{other}`: expected \"multi_thread\" or \
                             \"current_thread\""
                        )))
                    }
                };
                set(&mut self.flavor, flavor).map_err(|()| repeated())
            }
            "worker_threads" => {
                let Some(Lit::Int(lit)) = literal(&value) else {
                    return Err(wrong("an integer literal"));
                };
                let n: usize = lit.base10_parse()?;
                if n == 0 {
                    return Err(at_value("`worker_threads` must be at least 1".to_owned()));
                }
                set(&mut self.worker_threads, (n, meta.path.span())).map_err(|()| repeated())
            }
            "start_paused" | "debug" => {
                let Some(Lit::Bool(b)) = literal(&value) else {
                    return Err(wrong("`true` or `false`"));
                };
                let slot = if name == "debug" {
                    &mut self.debug
                } else {
                    &mut self.start_paused
                };
                set(slot, b.value).map_err(|()| repeated())
            }
            _ => {
                let Some(Lit::Str(s)) = literal(&value) else {
                    return Err(wrong("a path in a string"));
                };
                let path = parse_crate_path(s)?;
                set(&mut self.crate_path, path).map_err(|()| repeated())
            }
        }
    }

    /// Fills in the defaults and rejects combinations the runtime cannot honour.
    fn resolve(self, kind: Kind) -> syn::Result<Config> {
        let flavor = match (self.flavor, self.worker_threads) {
            (Some(flavor), _) => flavor,
            // `worker_threads = N` alone asks for a multi-thread runtime.
            (None, Some(_)) => Flavor::MultiThread,
            (None, None) => match kind {
                Kind::Main => Flavor::MultiThread,
                Kind::Test => Flavor::CurrentThread,
            },
        };
        if let (Flavor::CurrentThread, Some((_, span))) = (flavor, self.worker_threads) {
            return Err(syn::Error::new(
                span,
                "`worker_threads` needs the multi-thread flavor: a current-thread runtime runs \
                 everything on the calling thread; remove `worker_threads` or write \
                 `flavor = \"multi_thread\"`",
            ));
        }
        Ok(Config {
            flavor,
            worker_threads: self.worker_threads.map(|(n, _)| n),
            start_paused: self.start_paused,
            debug: self.debug,
            crate_path: self
                .crate_path
                .unwrap_or_else(|| syn::parse_quote!(::ringleader)),
        })
    }
}

/// The literal `value` is, if it is one.
fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        Expr::Group(group) => literal(&group.expr),
        _ => None,
    }
}

/// Stores an option, refusing a second value.
fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), ()> {
    match slot {
        Some(_) => Err(()),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

fn parse_crate_path(s: &LitStr) -> syn::Result<Path> {
    s.parse_with(Path::parse_mod_style).map_err(|_| {
        syn::Error::new(
            s.span(),
            format!(
                "`crate` takes the path of the ringleader crate, as in `crate = \"ringleader\"`; \
                 `{}` is not a path",
                s.value()
            ),
        )
    })
}

/// Rejects what the expansion cannot keep: every problem found, not only the first.
fn check_signature(kind: Kind, function: &ItemFn) -> syn::Result<()> {
    let sig = &function.sig;
    let attribute = kind.attribute();
    let mut errors: Vec<syn::Error> = Vec::new();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!("{attribute} needs an `async fn`: add `async` before `fn`"),
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(
            constness.span,
            format!("{attribute} cannot be used on a `const fn`"),
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new(
            unsafety.span,
            format!("{attribute} cannot be used on an `unsafe fn`"),
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            format!("{attribute} cannot be used on an `extern` fn"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let message = format!(
            "{attribute} functions cannot be generic: there is no caller to choose the \
             parameters"
        );
        errors.push(match &sig.generics.where_clause {
            Some(clause) if sig.generics.params.is_empty() => {
                syn::Error::new_spanned(clause, message)
            }
            _ => syn::Error::new_spanned(&sig.generics, message),
        });
    }
    if !sig.inputs.is_empty() || sig.variadic.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.inputs,
            format!("{attribute} functions take no arguments"),
        ));
    }
    if kind == Kind::Test {
        for attr in &function.attrs {
            if is_test_attribute(attr.path()) {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "#[ringleader::test] already makes the function a test: remove this \
                     attribute",
                ));
            }
        }
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(mut first) => {
            errors.for_each(|e| first.combine(e));
            Err(first)
        }
    }
}

/// `#[test]`, `#[core::prelude::v1::test]` and the like, written after ours. (A `#[test]`
/// written before ours expands first, out of sight; a second `#[ringleader::test]` expands
/// into a `#[test]` and is caught here.)
fn is_test_attribute(path: &Path) -> bool {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [only] => only == "test",
        [first, .., last] => last == "test" && matches!(first.as_str(), "core" | "std"),
        [] => false,
    }
}

/// The expansion proper; see the module docs.
fn write(kind: Kind, config: &Config, function: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let krate = &config.crate_path;
    let mut builder = match config.flavor {
        Flavor::MultiThread => quote!(#krate::runtime::Builder::new_multi_thread()),
        Flavor::CurrentThread => quote!(#krate::runtime::Builder::new_current_thread()),
    };
    if let Some(n) = config.worker_threads {
        builder.extend(quote!(.worker_threads(#n)));
    }
    if let Some(paused) = config.start_paused {
        builder.extend(quote!(.start_paused(#paused)));
    }
    if let Some(debug) = config.debug {
        builder.extend(quote!(.debug(#debug)));
    }
    let test = match kind {
        Kind::Test => quote!(#[::core::prelude::v1::test]),
        Kind::Main => TokenStream::new(),
    };
    let ident = &sig.ident;
    let mut outer = sig.clone();
    outer.asyncness = None;
    let run = match kind {
        Kind::Test => quote! {
            #builder
                .build()
                .expect("failed to build the ringleader runtime")
                .block_on(#ident())
        },
        // `run`'s Ctrl-C handling (the first SIGINT cancels the root) comes with main.
        Kind::Main => quote!(#krate::__main(#builder, #ident())),
    };
    quote! {
        #test
        #(#attrs)*
        #vis #outer {
            #sig #block
            #run
        }
    }
}

/// What stands in for the function when the attribute reports an error.
fn stub(function: &ItemFn) -> TokenStream {
    let vis = &function.vis;
    let ident = &function.sig.ident;
    let output = &function.sig.output;
    quote! {
        #[allow(dead_code)]
        #vis fn #ident() #output {
            ::core::unimplemented!()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{expand, Kind};
    use quote::quote;

    fn expanded(kind: Kind, args: proc_macro2::TokenStream) -> String {
        let item = quote!(
            async fn f() -> u8 {
                1
            }
        );
        expand(kind, args, item).to_string()
    }

    #[test]
    fn a_bare_test_is_a_current_thread_runtime_with_builder_defaults() {
        let out = expanded(Kind::Test, quote!());
        let expected = quote!(
            #[::core::prelude::v1::test]
            fn f() -> u8 {
                async fn f() -> u8 {
                    1
                }
                ::ringleader::runtime::Builder::new_current_thread()
                    .build()
                    .expect("failed to build the ringleader runtime")
                    .block_on(f())
            }
        );
        assert_eq!(out, expected.to_string());
    }

    #[test]
    fn a_bare_main_is_multi_thread_and_not_a_test() {
        let out = expanded(Kind::Main, quote!());
        assert!(out.contains("Builder :: new_multi_thread ()"), "{out}");
        assert!(!out.contains("test"), "{out}");
    }

    #[test]
    fn worker_threads_alone_implies_multi_thread_and_each_option_is_passed_on() {
        let out = expanded(
            Kind::Test,
            quote!(
                worker_threads = 3,
                start_paused = true,
                debug = false,
                crate = "rl"
            ),
        );
        assert!(
            out.contains(
                "rl :: runtime :: Builder :: new_multi_thread () . worker_threads (3usize) \
                 . start_paused (true) . debug (false) . build ()"
            ),
            "{out}"
        );
    }

    #[test]
    fn an_error_leaves_a_sync_stub_of_the_same_name() {
        let out = expanded(Kind::Main, quote!(flavor = "fast"));
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("fn f () -> u8"), "{out}");
        assert!(!out.contains("async"), "{out}");
    }
}
