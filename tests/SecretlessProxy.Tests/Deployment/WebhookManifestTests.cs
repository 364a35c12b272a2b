using System.Globalization;
using k8s;
using k8s.Models;
using SecretlessProxy.Cli;
using SecretlessProxy.Tests.Configuration;
using SecretlessProxy.Tests.Infrastructure;
using Xunit;

namespace SecretlessProxy.Tests.Deployment;

/// <summary>
/// deploy/kubernetes/webhook as <c>kubectl kustomize</c> renders it: the webhook configuration
/// calls the Service on the path the command serves, for pods in labelled namespaces only; the
/// Deployment's flags are ones the command accepts; the certificate comes from cert-manager (the
/// caBundle injected by its annotation) or from bootstrap-tls.sh, whose certificate the webhook
/// serves under the Service's name.
/// </summary>
public sealed class WebhookManifestTests
{
    private const string WithCertManager = "deploy/kubernetes/webhook";
    private const string WithoutCertManager = "deploy/kubernetes/webhook/base";

    [KubectlFact]
    public async Task The_webhook_configuration_calls_the_service_on_the_commands_path_for_new_pods_in_labelled_namespaces_only()
    {
        var objects = await RenderAsync(WithoutCertManager);
        var configuration = Assert.Single(objects.OfType<V1MutatingWebhookConfiguration>());
        var webhook = Assert.Single(configuration.Webhooks);
        var service = Assert.Single(objects.OfType<V1Service>());
        var container = Assert.Single(Kustomize.SingleDeployment(objects).Spec.Template.Spec.Containers);

        Assert.Equal(["v1"], webhook.AdmissionReviewVersions);
        Assert.Equal("None", webhook.SideEffects);
        Assert.Equal("Fail", webhook.FailurePolicy);
        Assert.Equal("IfNeeded", webhook.ReinvocationPolicy);
        Assert.Equal("enabled", webhook.NamespaceSelector.MatchLabels["secretless-proxy.io/injection"]);
        var rule = Assert.Single(webhook.Rules);
        Assert.Equal(["CREATE"], rule.Operations);
        Assert.Equal([""], rule.ApiGroups);
        Assert.Equal(["pods"], rule.Resources);

        Assert.Equal(service.Metadata.Name, webhook.ClientConfig.Service.Name);
        Assert.Equal(service.Metadata.NamespaceProperty, webhook.ClientConfig.Service.NamespaceProperty);
        Assert.Equal("/mutate", webhook.ClientConfig.Service.Path);
        var servicePort = Assert.Single(service.Spec.Ports);
        Assert.Equal(servicePort.Port, webhook.ClientConfig.Service.Port);
        var containerPort = Assert.Single(container.Ports, p => p.Name == servicePort.TargetPort.Value);
        Assert.Equal(containerPort.ContainerPort, new Uri(Arg(container, "--url")).Port);
        Assert.All(new[] { container.ReadinessProbe, container.LivenessProbe }, probe =>
        {
            Assert.Equal("HTTPS", probe.HttpGet.Scheme);
            Assert.Equal("/healthz", probe.HttpGet.Path);
        });

        // The webhook's own namespace does not opt in, so it never reviews its own pods.
        var own = Assert.Single(objects.OfType<V1Namespace>());
        Assert.Equal(service.Metadata.NamespaceProperty, own.Metadata.Name);
        Assert.False(own.Metadata.Labels?.ContainsKey("secretless-proxy.io/injection") ?? false);
    }

    [KubectlFact]
    public async Task The_deployments_flags_are_accepted_and_the_certificate_is_mounted_so_that_renewals_reach_it()
    {
        var objects = await RenderAsync(WithoutCertManager);
        var pod = Kustomize.SingleDeployment(objects).Spec.Template.Spec;
        var container = Assert.Single(pod.Containers);

        var parse = CliApp.Create(TextWriter.Null, TextWriter.Null).Parse(container.Args.ToArray());
        Assert.Empty(parse.Errors);
        Assert.Equal("webhook", parse.CommandResult.Command.Name);

        var tlsMount = Assert.Single(container.VolumeMounts, m => pod.Volumes.Single(v => v.Name == m.Name).Secret is not null);
        Assert.Null(tlsMount.SubPath); // a subPath mount is never updated by the kubelet
        Assert.True(tlsMount.ReadOnlyProperty);
        Assert.Equal(tlsMount.MountPath + "/tls.crt", Arg(container, "--tls-cert"));
        Assert.Equal(tlsMount.MountPath + "/tls.key", Arg(container, "--tls-key"));
        Assert.Equal("secretless-proxy-webhook-tls", pod.Volumes.Single(v => v.Name == tlsMount.Name).Secret.SecretName);

        Assert.False(pod.AutomountServiceAccountToken);
        var sc = container.SecurityContext;
        Assert.True(sc.RunAsNonRoot);
        Assert.True(sc.RunAsUser is > 0);
        Assert.True(sc.ReadOnlyRootFilesystem);
        Assert.False(sc.AllowPrivilegeEscalation);
        Assert.Equal(["ALL"], sc.Capabilities.Drop);
        Assert.Null(sc.Capabilities.Add);
    }

    [KubectlFact]
    public async Task With_cert_manager_the_serving_certificate_names_the_service_fills_the_mounted_secret_and_its_ca_is_injected()
    {
        var objects = await RenderAsync(WithCertManager);
        var configuration = Assert.Single(objects.OfType<V1MutatingWebhookConfiguration>());
        var service = Assert.Single(objects.OfType<V1Service>());
        var pod = Kustomize.SingleDeployment(objects).Spec.Template.Spec;
        var certificates = objects.OfType<CertManagerObject>().Where(o => o.Kind == "Certificate").ToList();

        var injectFrom = configuration.Metadata.Annotations["cert-manager.io/inject-ca-from"].Split('/');
        var serving = Assert.Single(certificates, c => c.Metadata.NamespaceProperty == injectFrom[0] && c.Metadata.Name == injectFrom[1]);
        var tlsSecret = pod.Volumes.Single(v => v.Secret is not null).Secret.SecretName;
        Assert.Equal(tlsSecret, (string)serving.Spec["secretName"]);
        var dnsNames = ((List<object>)serving.Spec["dnsNames"]).Cast<string>().ToList();
        Assert.Contains(service.Metadata.Name + "." + service.Metadata.NamespaceProperty + ".svc", dnsNames);
        // Signed by a CA that outlives it: the caBundle does not change when the serving certificate is renewed.
        var issuer = (Dictionary<object, object>)serving.Spec["issuerRef"];
        var ca = Assert.Single(certificates, c => c.Spec.TryGetValue("isCA", out var isCa) && isCa is true);
        Assert.Contains(objects.OfType<CertManagerObject>(), o => o.Kind == "Issuer" && o.Metadata.Name == (string)issuer["name"]
            && ((Dictionary<object, object>)o.Spec["ca"])["secretName"] as string == (string)ca.Spec["secretName"]);
    }

    [KubectlFact]
    public async Task The_bootstrap_scripts_certificate_is_served_under_the_services_name()
    {
        var directory = Directory.CreateTempSubdirectory("webhook-bootstrap-").FullName;
        try
        {
            var script = await ExternalClient.RunAsync("sh", [RepoPaths.Combine("deploy", "kubernetes", "webhook", "bootstrap-tls.sh"), directory, "--files-only"]);
            Assert.True(script.ExitCode == 0, script.ToString());
            var service = Assert.Single((await RenderAsync(WithoutCertManager)).OfType<V1Service>());
            var host = service.Metadata.Name + "." + service.Metadata.NamespaceProperty + ".svc";

            await using var server = await WebhookServer.StartWithFilesAsync(Path.Combine(directory, "tls.crt"), Path.Combine(directory, "tls.key"));
            var port = server.BaseUri.Port.ToString(CultureInfo.InvariantCulture);
            // As the API server calls it: the Service's DNS name, verified against the caBundle (ca.crt).
            var result = await ExternalClient.RunAsync("curl", ["-sS", "--cacert", Path.Combine(directory, "ca.crt"), "--resolve", host + ":" + port + ":127.0.0.1", "https://" + host + ":" + port + "/healthz"]);

            Assert.True(result.ExitCode == 0, result.ToString());
            Assert.Equal("ok\n", result.Output);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task<IReadOnlyList<object>> RenderAsync(string directory)
    {
        var result = await ExternalClient.RunAsync("kubectl", ["kustomize", RepoPaths.Combine(directory.Split('/'))]);
        Assert.True(result.ExitCode == 0, "kubectl kustomize " + directory + " failed\n" + result);
        return KubernetesYaml.LoadAllFromString(result.Output, new Dictionary<string, Type>
        {
            ["cert-manager.io/v1/Certificate"] = typeof(CertManagerObject),
            ["cert-manager.io/v1/Issuer"] = typeof(CertManagerObject),
        });
    }

    private static string Arg(V1Container container, string flag)
    {
        var args = container.Args.ToList();
        return args[args.IndexOf(flag) + 1];
    }
}
