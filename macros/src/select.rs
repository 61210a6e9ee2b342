//! `join!`, `try_join!` and `select!`: the expansions behind the facade's `macro_rules!`
//! forwarders, which pass `$crate` as the first tokens (`<crate path> ; <input>`) so that
//! a renamed `ringleader` still resolves.
//!
//! Every expansion polls the futures from one `poll_fn` on the calling task: nothing is
//! spawned, so the futures need neither `Send` nor `'static`. User code (the handlers of
//! `select!`) is expanded outside that closure and outside any loop of ours, so `break`,
//! `continue`, `return` and `?` in a handler mean what they mean around the macro.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Pat, Token};

/// The most futures `select!` takes: its disabled set is one `u64`.
const MAX_BRANCHES: usize = 64;

/// Splits `<crate path> ; <rest>` (the forwarder's `$crate`) off the input.
fn split_crate(input: TokenStream) -> (TokenStream, TokenStream) {
    let mut krate = TokenStream::new();
    let mut tokens = input.into_iter();
    for tt in tokens.by_ref() {
        if matches!(&tt, TokenTree::Punct(p) if p.as_char() == ';') {
            break;
        }
        krate.extend([tt]);
    }
    (krate, tokens.collect())
}

/// Comma-separated futures of `join!` / `try_join!`.
struct Futures(Vec<Expr>);

impl Parse for Futures {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let list = input.parse_terminated(Expr::parse, Token![,])?;
        Ok(Futures(list.into_iter().collect()))
    }
}

/// `join!` (`fail_fast == false`) and `try_join!` (`true`).
pub(crate) fn join(input: TokenStream, fail_fast: bool) -> TokenStream {
    let (krate, rest) = split_crate(input);
    let futures = match syn::parse2::<Futures>(rest) {
        Ok(f) => f.0,
        Err(e) => return e.to_compile_error(),
    };
    if fail_fast && futures.is_empty() {
        return syn::Error::new(Span::call_site(), "try_join! needs at least one future")
            .to_compile_error();
    }
    let n = futures.len();
    if n == 0 {
        return quote! { () };
    }
    let site = Span::mixed_site();
    let futs: Vec<Ident> = (0..n)
        .map(|i| format_ident!("__rl_fut{i}", span = site))
        .collect();
    let outs: Vec<Ident> = (0..n)
        .map(|i| format_ident!("__rl_out{i}", span = site))
        .collect();
    let cx = Ident::new("__rl_cx", site);
    let pending = Ident::new("__rl_pending", site);
    let start = Ident::new("__rl_start", site);
    let index: Vec<usize> = (0..n).collect();
    let on_ready = |out: &Ident| {
        if fail_fast {
            quote_spanned! {site=>
                match __rl_value {
                    ::core::result::Result::Ok(v) => #out = ::core::option::Option::Some(v),
                    ::core::result::Result::Err(e) => {
                        return ::core::task::Poll::Ready(::core::result::Result::Err(e));
                    }
                }
            }
        } else {
            quote_spanned! {site=> #out = ::core::option::Option::Some(__rl_value); }
        }
    };
    let ready: Vec<TokenStream> = outs.iter().map(on_ready).collect();
    let values = quote_spanned! {site=>
        ( #( #krate::__private::take_output(&mut #outs), )* )
    };
    let done = if fail_fast {
        quote_spanned! {site=> ::core::result::Result::Ok(#values) }
    } else {
        values
    };
    quote_spanned! {site=> {
        #(
            let mut #futs = ::core::pin::pin!(::core::option::Option::Some(#futures));
            let mut #outs = ::core::option::Option::None;
        )*
        // Each poll starts one future further on, so that none is always polled last
        // (after the others spent the task's cooperative budget).
        let mut #start: usize = 0;
        ::core::future::poll_fn(|#cx: &mut ::core::task::Context<'_>| {
            let mut #pending = false;
            for __rl_i in 0..#n {
                match #krate::__private::nth_from(#start, __rl_i, #n) {
                    #(
                        #index => {
                            if let ::core::option::Option::Some(f) = #futs.as_mut().as_pin_mut() {
                                match ::core::future::Future::poll(f, #cx) {
                                    ::core::task::Poll::Ready(__rl_value) => {
                                        // Drop the finished future now, not at the end.
                                        #futs.set(::core::option::Option::None);
                                        #ready
                                    }
                                    ::core::task::Poll::Pending => #pending = true,
                                }
                            }
                        }
                    )*
                    _ => {}
                }
            }
            #start = #start.wrapping_add(1);
            if #pending {
                ::core::task::Poll::Pending
            } else {
                ::core::task::Poll::Ready(#done)
            }
        })
        .await
    }}
}

/// One branch of `select!`.
struct Branch {
    pat: Pat,
    future: Expr,
    precondition: Option<Expr>,
    handler: Expr,
}

struct Select {
    biased: bool,
    branches: Vec<Branch>,
    otherwise: Option<Expr>,
}

/// A handler: a block (the comma after it optional) or an expression and a comma (optional
/// after the last branch), as in a `match` arm.
fn parse_handler(input: ParseStream) -> syn::Result<Expr> {
    let handler = if input.peek(syn::token::Brace) {
        let block: syn::Block = input.parse()?;
        Expr::Block(syn::ExprBlock {
            attrs: Vec::new(),
            label: None,
            block,
        })
    } else {
        let e: Expr = input.parse()?;
        if !input.is_empty() && !input.peek(Token![,]) {
            return Err(input.error("expected `,` after this branch's handler"));
        }
        e
    };
    if input.peek(Token![,]) {
        input.parse::<Token![,]>()?;
    }
    Ok(handler)
}

impl Parse for Select {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut biased = false;
        if input.peek(Ident) && input.peek2(Token![;]) {
            let word: Ident = input.parse()?;
            if word != "biased" {
                return Err(syn::Error::new(
                    word.span(),
                    "expected `biased;` or a branch",
                ));
            }
            input.parse::<Token![;]>()?;
            biased = true;
        }
        let mut branches = Vec::new();
        let mut otherwise = None;
        while !input.is_empty() {
            if input.peek(Token![else]) {
                let token = input.parse::<Token![else]>()?;
                input.parse::<Token![=>]>()?;
                let handler = parse_handler(input)?;
                if otherwise.replace(handler).is_some() {
                    return Err(syn::Error::new(
                        token.span,
                        "select! has a second `else` branch",
                    ));
                }
                continue;
            }
            let pat = Pat::parse_multi_with_leading_vert(input)?;
            input.parse::<Token![=]>()?;
            let future: Expr = input.parse()?;
            let mut precondition = None;
            if input.peek(Token![,]) && input.peek2(Token![if]) {
                input.parse::<Token![,]>()?;
                input.parse::<Token![if]>()?;
                precondition = Some(input.parse()?);
            }
            input.parse::<Token![=>]>()?;
            let handler = parse_handler(input)?;
            branches.push(Branch {
                pat,
                future,
                precondition,
                handler,
            });
        }
        Ok(Select {
            biased,
            branches,
            otherwise,
        })
    }
}

/// A binding of a branch's pattern: moved out inside the poll closure, bound again (with
/// its `mut`) in the handler's arm.
struct Binding {
    ident: Ident,
    mutable: bool,
}

/// Collects the names `pat` binds, and strips their `mut` (the inner match only moves them
/// out). A bare identifier that starts with an upper-case letter is taken for a constant or
/// unit variant (as `None`), which is not a binding; `ref` bindings are refused, since the
/// value they would borrow does not outlive the poll.
fn bindings(pat: &mut Pat, out: &mut Vec<Binding>) -> syn::Result<()> {
    match pat {
        Pat::Ident(p) => {
            if p.by_ref.is_some() {
                return Err(syn::Error::new(
                    p.span(),
                    "select! binds by value: write the name without `ref`",
                ));
            }
            let constant = p.subpat.is_none()
                && p.mutability.is_none()
                && p.ident.to_string().starts_with(|c: char| c.is_uppercase());
            if !constant {
                out.push(Binding {
                    ident: p.ident.clone(),
                    mutable: p.mutability.take().is_some(),
                });
            }
            if let Some((_, sub)) = &mut p.subpat {
                bindings(sub, out)?;
            }
        }
        Pat::Or(p) => {
            // Every alternative binds the same names; the first one says which.
            let mut first = Vec::new();
            for (i, case) in p.cases.iter_mut().enumerate() {
                let mut names = Vec::new();
                bindings(case, &mut names)?;
                if i == 0 {
                    first = names;
                }
            }
            out.extend(first);
        }
        Pat::Paren(p) => bindings(&mut p.pat, out)?,
        Pat::Reference(p) => bindings(&mut p.pat, out)?,
        Pat::Slice(p) => {
            for e in &mut p.elems {
                bindings(e, out)?;
            }
        }
        Pat::Struct(p) => {
            for f in &mut p.fields {
                bindings(&mut f.pat, out)?;
            }
        }
        Pat::Tuple(p) => {
            for e in &mut p.elems {
                bindings(e, out)?;
            }
        }
        Pat::TupleStruct(p) => {
            for e in &mut p.elems {
                bindings(e, out)?;
            }
        }
        Pat::Type(p) => bindings(&mut p.pat, out)?,
        Pat::Lit(_) | Pat::Path(_) | Pat::Range(_) | Pat::Rest(_) | Pat::Wild(_) => {}
        other => {
            return Err(syn::Error::new(
                other.span(),
                "select! does not support this kind of pattern",
            ))
        }
    }
    Ok(())
}

pub(crate) fn select(input: TokenStream) -> TokenStream {
    let (krate, rest) = split_crate(input);
    let select = match syn::parse2::<Select>(rest) {
        Ok(s) => s,
        Err(e) => return e.to_compile_error(),
    };
    match expand_select(&krate, select) {
        Ok(t) => t,
        Err(e) => e.to_compile_error(),
    }
}

fn expand_select(krate: &TokenStream, select: Select) -> syn::Result<TokenStream> {
    let n = select.branches.len();
    if n == 0 {
        let Some(otherwise) = select.otherwise else {
            return Err(syn::Error::new(
                Span::call_site(),
                "select! needs at least one branch",
            ));
        };
        return Ok(quote! { #otherwise });
    }
    if n > MAX_BRANCHES {
        return Err(syn::Error::new(
            select.branches[MAX_BRANCHES].pat.span(),
            format!("select! takes at most {MAX_BRANCHES} branches"),
        ));
    }
    let site = Span::mixed_site();
    let out_ty = Ident::new("__RlSelectOut", site);
    let disabled = Ident::new("__rl_disabled", site);
    let cx = Ident::new("__rl_cx", site);
    let value = Ident::new("__rl_value", site);
    let variants: Vec<Ident> = (0..n).map(|i| format_ident!("B{i}", span = site)).collect();
    let params: Vec<Ident> = (0..n).map(|i| format_ident!("T{i}", span = site)).collect();
    let futs: Vec<Ident> = (0..n)
        .map(|i| format_ident!("__rl_fut{i}", span = site))
        .collect();

    let mut preconditions = Vec::new();
    let mut futures = Vec::new();
    let mut poll_arms = Vec::new();
    let mut handler_arms = Vec::new();
    for (i, branch) in select.branches.into_iter().enumerate() {
        let Branch {
            mut pat,
            future,
            precondition,
            handler,
        } = branch;
        let bit = quote_spanned! {site=> (1u64 << #i) };
        if let Some(cond) = precondition {
            preconditions.push(quote_spanned! {site=> if !(#cond) { #disabled |= #bit; } });
        }
        let fut = &futs[i];
        futures.push(quote_spanned! {site=> let mut #fut = ::core::pin::pin!(#future); });
        let mut names = Vec::new();
        bindings(&mut pat, &mut names)?;
        let moved: Vec<&Ident> = names.iter().map(|b| &b.ident).collect();
        let rebound: Vec<TokenStream> = names
            .iter()
            .map(|b| {
                let ident = &b.ident;
                if b.mutable {
                    quote! { mut #ident }
                } else {
                    quote! { #ident }
                }
            })
            .collect();
        let variant = &variants[i];
        poll_arms.push(quote_spanned! {site=>
            #i => {
                if let ::core::task::Poll::Ready(#value) =
                    ::core::future::Future::poll(#fut.as_mut(), #cx)
                {
                    #[allow(unreachable_patterns, unused_variables)]
                    match #value {
                        #pat => {
                            return ::core::task::Poll::Ready(
                                #out_ty::#variant(( #( #moved, )* )),
                            );
                        }
                        // The pattern refused the output: the branch is done for this call.
                        _ => #disabled |= #bit,
                    }
                }
            }
        });
        handler_arms.push(quote_spanned! {site=>
            #out_ty::#variant(( #( #rebound, )* )) => #handler,
        });
    }
    let otherwise = match select.otherwise {
        Some(e) => quote! { #e },
        None => quote_spanned! {site=>
            ::core::panic!("select!: every branch is disabled and there is no `else` branch")
        },
    };
    let start = if select.biased {
        quote_spanned! {site=> 0usize }
    } else {
        quote_spanned! {site=> #krate::__private::select_start(#n) }
    };
    let all: u64 = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    Ok(quote_spanned! {site=> {
        #[allow(non_camel_case_types)]
        enum #out_ty<#( #params, )*> {
            #( #variants(#params), )*
            Disabled,
        }
        let mut #disabled: u64 = 0;
        #( #preconditions )*
        #( #futures )*
        let __rl_out = ::core::future::poll_fn(|#cx: &mut ::core::task::Context<'_>| {
            let __rl_start: usize = #start;
            for __rl_i in 0..#n {
                let __rl_branch = #krate::__private::nth_from(__rl_start, __rl_i, #n);
                if #disabled & (1u64 << __rl_branch) != 0 {
                    continue;
                }
                match __rl_branch {
                    #( #poll_arms )*
                    _ => {}
                }
            }
            if #disabled == #all {
                ::core::task::Poll::Ready(#out_ty::Disabled)
            } else {
                ::core::task::Poll::Pending
            }
        })
        .await;
        match __rl_out {
            #( #handler_arms )*
            #out_ty::Disabled => #otherwise,
        }
    }})
}
