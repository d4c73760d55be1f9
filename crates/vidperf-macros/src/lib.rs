//! The `#[vidperf::track]` attribute. Use it through the `vidperf` crate, which
//! re-exports it and documents it.

#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, LitStr, MetaNameValue, ReturnType, Token, Type};

/// Tracks a function as a vidperf operation: see `vidperf::track`.
#[proc_macro_attribute]
pub fn track(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(args as Args);
    let Ok(function) = syn::parse::<ItemFn>(item.clone()) else {
        let span = syn::parse::<syn::Item>(item).map_or_else(|_| Span::call_site(), |i| i.span());
        return syn::Error::new(
            span,
            "#[vidperf::track] goes on a function (`fn` or `async fn`)",
        )
        .into_compile_error()
        .into();
    };
    expand(args, function)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

struct Args {
    strategy: LitStr,
    operation: Option<LitStr>,
    name: Option<LitStr>,
    krate: Option<syn::Path>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let pairs = Punctuated::<MetaNameValue, Token![,]>::parse_terminated(input)?;
        let (mut strategy, mut operation, mut name, mut krate) = (None, None, None, None);
        for pair in pairs {
            let key = pair
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let lit = match &pair.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => s.clone(),
                other => {
                    return Err(syn::Error::new(other.span(), "expected a string literal"));
                }
            };
            let slot = match key.as_str() {
                "strategy" => &mut strategy,
                "operation" => &mut operation,
                "name" => &mut name,
                "crate" => {
                    krate = Some(lit.parse()?);
                    continue;
                }
                _ => {
                    return Err(syn::Error::new(
                        pair.path.span(),
                        "unknown argument: expected `strategy`, `operation`, `name` or `crate`",
                    ));
                }
            };
            if slot.replace(lit).is_some() {
                return Err(syn::Error::new(pair.path.span(), "argument given twice"));
            }
        }
        let strategy = strategy
            .ok_or_else(|| syn::Error::new(Span::call_site(), "missing `strategy = \"...\"`"))?;
        Ok(Self {
            strategy,
            operation,
            name,
            krate,
        })
    }
}

fn expand(args: Args, item: ItemFn) -> syn::Result<TokenStream2> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let krate = args
        .krate
        .map_or_else(|| quote!(::vidperf), |path| quote!(#path));
    let name = args
        .name
        .unwrap_or_else(|| LitStr::new(&sig.ident.to_string(), sig.ident.span()));
    let strategy = &args.strategy;
    let operation = args.operation.map(|op| quote!(operation = #op,));
    let private = quote!(#krate::__private);
    let make_span = quote! {
        #krate::operation_span!(#name, #operation strategy = #strategy)
    };
    // Annotating the result's type lets `?` inside the body infer its error type.
    let ret_ty: Option<Type> = match &sig.output {
        ReturnType::Type(_, ty) if !contains_impl_trait(ty) => Some((**ty).clone()),
        ReturnType::Type(..) => None,
        ReturnType::Default => Some(syn::parse_quote!(())),
    };
    let annotated = ret_ty.as_ref().map(|ty| quote!(: #ty));
    let body = if sig.asyncness.is_some() {
        quote_spanned! {block.span()=>
            let __vidperf_span = #make_span;
            // Dropped before the body returns (a timeout, an abort): cancelled.
            let __vidperf_guard = #private::CancelGuard::new(&__vidperf_span);
            #[allow(clippy::let_unit_value)]
            let __vidperf_result #annotated = #private::Instrument::instrument(
                async move #block,
                ::core::clone::Clone::clone(&__vidperf_span),
            )
            .await;
            __vidperf_guard.completed();
            {
                #[allow(unused_imports)]
                use #private::{RecordError as _, RecordFigures as _, RecordNothing as _};
                (&&&#private::Returned(&__vidperf_result)).record_on(&__vidperf_span);
            }
            __vidperf_result
        }
    } else {
        let closure_ret = ret_ty.as_ref().map(|ty| quote!(-> #ty));
        quote_spanned! {block.span()=>
            let __vidperf_span = #make_span;
            #[allow(clippy::redundant_closure_call, clippy::let_unit_value)]
            let __vidperf_result = __vidperf_span.in_scope(move || #closure_ret #block);
            {
                #[allow(unused_imports)]
                use #private::{RecordError as _, RecordFigures as _, RecordNothing as _};
                (&&&#private::Returned(&__vidperf_result)).record_on(&__vidperf_span);
            }
            __vidperf_result
        }
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    })
}

fn contains_impl_trait(ty: &Type) -> bool {
    match ty {
        Type::ImplTrait(_) => true,
        Type::Paren(p) => contains_impl_trait(&p.elem),
        Type::Group(g) => contains_impl_trait(&g.elem),
        Type::Reference(r) => contains_impl_trait(&r.elem),
        Type::Tuple(t) => t.elems.iter().any(contains_impl_trait),
        Type::Path(p) => p.path.segments.iter().any(|seg| match &seg.arguments {
            syn::PathArguments::AngleBracketed(a) => a.args.iter().any(|arg| match arg {
                syn::GenericArgument::Type(t) => contains_impl_trait(t),
                _ => false,
            }),
            _ => false,
        }),
        _ => false,
    }
}
